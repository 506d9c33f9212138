# JSON -> one "path<TAB>value" line per scalar, for the tiny guest's /init (busybox awk).
# Paths join object keys and array indexes (from 0) with "/": networks/0/routes/0/gateway.
# Handles what json.dumps writes: objects, arrays, strings with the escapes \" \\ \/ \b \f \n \r \t
# (\uXXXX is kept as written; control characters become spaces), numbers, true, false, null (empty).
# Keys holding "/" or a tab are not supported. Invalid JSON prints nothing but the error, and exits 1.
BEGIN { RS = "\001" }
{ text = text $0 "\n" }
END {
    n = length(text); pos = 1
    if (!value("")) { print "json: invalid JSON near offset " pos > "/dev/stderr"; exit 1 }
    printf "%s", OUT
}
function ws() { while (pos <= n && index(" \t\r\n", substr(text, pos, 1))) pos++ }
function emit(path, v) { sub(/^\//, "", path); OUT = OUT path "\t" v "\n" }
function value(path,    c, i, k, s) {
    ws(); c = substr(text, pos, 1)
    if (c == "{") {
        pos++; ws()
        if (substr(text, pos, 1) == "}") { pos++; return 1 }
        while (1) {
            ws(); if (substr(text, pos, 1) != "\"" || !str()) return 0
            k = STR; ws()
            if (substr(text, pos, 1) != ":") return 0
            pos++
            if (!value(path "/" k)) return 0
            ws(); c = substr(text, pos++, 1)
            if (c == "}") return 1
            if (c != ",") return 0
        }
    }
    if (c == "[") {
        pos++; ws(); i = 0
        if (substr(text, pos, 1) == "]") { pos++; return 1 }
        while (1) {
            if (!value(path "/" i++)) return 0
            ws(); c = substr(text, pos++, 1)
            if (c == "]") return 1
            if (c != ",") return 0
        }
    }
    if (c == "\"") { if (!str()) return 0; emit(path, STR); return 1 }
    if (substr(text, pos, 4) == "null") { pos += 4; emit(path, ""); return 1 }
    if (substr(text, pos, 4) == "true") { pos += 4; emit(path, "true"); return 1 }
    if (substr(text, pos, 5) == "false") { pos += 5; emit(path, "false"); return 1 }
    s = pos
    while (pos <= n && index("+-0123456789.eE", substr(text, pos, 1))) pos++
    if (pos == s) return 0
    emit(path, substr(text, s, pos - s)); return 1
}
# A string at pos (on its opening quote) into STR; pos after its closing quote.
function str(    c, e, out) {
    pos++; out = ""
    while (pos <= n) {
        c = substr(text, pos, 1)
        if (c == "\"") { pos++; STR = out; return 1 }
        if (c == "\\") {
            e = substr(text, pos + 1, 1); pos += 2
            if (e == "n" || e == "r" || e == "t" || e == "b" || e == "f") out = out " "
            else if (e == "u") out = out "\\u"
            else out = out e
            continue
        }
        if (c < " ") c = " "
        out = out c; pos++
    }
    return 0
}
