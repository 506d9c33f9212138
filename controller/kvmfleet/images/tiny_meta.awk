# The public keys of a NoCloud meta-data file, one per line, for the tiny guest's /init (busybox awk).
# Reads the YAML subset cloud-init's NoCloud seeds use for `public-keys:`: a single key on the same line,
# a block list (`  - key`) or a block mapping (`  name: key`) indented below it; values plain,
# 'single-quoted' ('' for ') or "double-quoted" (\" and \\ escapes, as kvmfleet's seed writer uses).
function unquote(v,    q, out, i, c) {
    sub(/^[ \t]+/, "", v); sub(/[ \t\r]+$/, "", v)
    q = substr(v, 1, 1)
    if (q == "'" && substr(v, length(v), 1) == "'") {
        v = substr(v, 2, length(v) - 2); gsub(/''/, "'", v); return v
    }
    if (q == "\"" && substr(v, length(v), 1) == "\"") {
        v = substr(v, 2, length(v) - 2); out = ""
        for (i = 1; i <= length(v); i++) {
            c = substr(v, i, 1)
            if (c == "\\") { i++; c = substr(v, i, 1) }
            out = out c
        }
        return out
    }
    return v
}
function key(v) { v = unquote(v); if (v != "") print v }
inblock && /^[ \t]+/ {
    line = $0; sub(/^[ \t]+/, "", line)
    if (substr(line, 1, 1) == "-") { key(substr(line, 2)); next }
    if (match(line, /^[^:"' ]+:[ \t]/)) { key(substr(line, RLENGTH + 1)); next }
    next
}
{ inblock = 0 }
/^public-keys:/ {
    rest = $0; sub(/^public-keys:[ \t]*/, "", rest); sub(/[ \t\r]+$/, "", rest)
    if (rest == "") inblock = 1
    else key(rest)
}
