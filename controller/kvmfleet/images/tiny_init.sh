#!/bin/busybox sh
# /init of the kvmfleet tiny guest (PID 1, runs from the initramfs; the disk only holds the bootloader).
# Reads a NoCloud (label cidata) or config-drive (label config-2) seed: hostname, instance id, SSH public
# keys, network_data.json, user data. Configures the links network_data.json names (static ipv4 or
# udhcpc), eth0 with udhcpc when it names none, runs dropbear (keys only, root's authorized_keys from
# the seed), runs a #! user-data script, prints the ready line on the console, powers off on the ACPI
# power button.

/bin/busybox mkdir -p /proc /sys /dev /run /tmp /mnt/seed /sbin /usr/bin /usr/sbin /var/log
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1

say() { echo "kvmfleet-guest: $*"; }

# Modules come listed as "<group> <path>" in dependency order (modules.dep resolved at build time).
load_modules() {
    kver=$(uname -r)
    while read -r group mod; do
        [ "$group" = "$1" ] || continue
        insmod "/lib/modules/$kver/$mod" 2>/dev/null || say "insmod failed: $mod"
    done < /etc/kvmfleet/modules
}
load_modules boot

# SSH: root by key only (-s: no password logins; no password is ever set); the seed's keys are put in
# /root/.ssh/authorized_keys below. Started in the background this early because making the host key
# waits for the kernel's random pool (a second or more under TCG), which then overlaps finding the
# seed and the network; waited for before the ready line.
start_ssh() {
    mkdir -p /etc/dropbear
    hostkey=/etc/dropbear/dropbear_ed25519_host_key
    if dropbearkey -t ed25519 -f $hostkey > /run/hostkey.out 2>&1; then
        dropbear -s -p 22 -r $hostkey -P /run/dropbear.pid || say "dropbear did not start"
    else
        say "cannot make an ssh host key"
    fi
}
start_ssh &
ssh_pid=$!

# The power button: busybox acpid maps KEY_POWER from /dev/input/event* to /etc/acpi/PWRF/00000080.
acpid -c /etc/acpi -l /run/acpid.log

hostname=kvmfleet-guest
instance_id=none
user_data=

JSON=/usr/share/kvmfleet/json.awk
T=$(printf '\t')
first_line() { sed -n "s/^[[:space:]]*$1[[:space:]]*:[[:space:]]*//p" "$2" | head -n 1 | tr -d "\"'\r"; }
json_string() { tr ',{}' '\n\n\n' < "$2" | sed -n "s/^[[:space:]]*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" | head -n 1; }

find_seed() {
    for label in cidata CIDATA config-2 CONFIG-2; do
        dev=$(findfs "LABEL=$label" 2>/dev/null) && { echo "$label $dev"; return 0; }
    done
    return 1
}

# virtio disks are probed inside insmod. Only without a seed there, load the other buses a seed
# may come on (virtio-scsi, IDE); insmod waits for their async probing, give them a short moment more.
seed=$(find_seed)
if [ -z "$seed" ]; then
    load_modules seed-fallback
    tries=0
    seed=$(find_seed)
    while [ -z "$seed" ] && [ $tries -lt 5 ] && ls /sys/class/scsi_host/* >/dev/null 2>&1; do
        sleep 0.2
        tries=$((tries + 1))
        seed=$(find_seed)
    done
fi

if [ -n "$seed" ]; then
    label=${seed%% *}
    dev=${seed#* }
    if mount -o ro "$dev" /mnt/seed; then
        case "$label" in
        cidata|CIDATA)
            if [ -f /mnt/seed/meta-data ]; then
                v=$(first_line instance-id /mnt/seed/meta-data); [ -n "$v" ] && instance_id=$v
                v=$(first_line local-hostname /mnt/seed/meta-data)
                [ -n "$v" ] || v=$(first_line hostname /mnt/seed/meta-data)
                [ -n "$v" ] && hostname=$v
                awk -f /usr/share/kvmfleet/meta.awk /mnt/seed/meta-data > /run/public-keys
            fi
            [ -f /mnt/seed/user-data ] && user_data=/mnt/seed/user-data
            [ -f /mnt/seed/network_data.json ] && cp /mnt/seed/network_data.json /run/network_data.json
            ;;
        *)
            md=/mnt/seed/openstack/latest/meta_data.json
            if [ -f "$md" ] && awk -f $JSON "$md" > /run/meta_data.flat; then
                v=$(sed -n "s/^uuid$T//p" /run/meta_data.flat); [ -n "$v" ] && instance_id=$v
                v=$(sed -n "s/^hostname$T//p" /run/meta_data.flat); [ -n "$v" ] && hostname=$v
                sed -n "s|^public_keys/[^$T]*$T||p" /run/meta_data.flat > /run/public-keys
            elif [ -f "$md" ]; then
                say "meta_data.json is not valid JSON"
                v=$(json_string uuid "$md"); [ -n "$v" ] && instance_id=$v
                v=$(json_string hostname "$md"); [ -n "$v" ] && hostname=$v
            fi
            [ -f /mnt/seed/openstack/latest/user_data ] && user_data=/mnt/seed/openstack/latest/user_data
            nd=/mnt/seed/openstack/latest/network_data.json
            [ -f "$nd" ] && cp "$nd" /run/network_data.json
            ;;
        esac
        if [ -n "$user_data" ]; then
            cp "$user_data" /run/user-data
            user_data=/run/user-data
        fi
        umount /mnt/seed
    else
        say "cannot mount seed $dev ($label)"
    fi
fi

# A hostname is at most 63 characters of letters, digits, '-' and '.'.
hostname=$(echo "$hostname" | tr -cd 'A-Za-z0-9.-' | cut -c1-63)
[ -n "$hostname" ] || hostname=kvmfleet-guest
hostname "$hostname"
echo "$hostname" > /etc/hostname
# The ready line is parsed as space-separated key=value pairs.
instance_id=$(echo "$instance_id" | tr -d '[:space:]')
[ -n "$instance_id" ] || instance_id=none

ip link set lo up

dhcp() {
    ip link set "$1" up
    # Bounded: up to 10 discovers 3 s apart (dnsmasq may first ping a new address for up to 3 s, and
    # a loaded TCG host answers late); without a lease by then the ready line says ip=none and udhcpc
    # goes on trying in the background (-b), as it stays there to renew a lease it got.
    udhcpc -i "$1" -b -t 10 -T 3 -A 3 -s /usr/share/udhcpc/default.script -p "/run/udhcpc.$1.pid" \
        >/dev/null 2>&1
}

iface_of() {
    for a in /sys/class/net/*/address; do
        [ "$(cat "$a")" = "$1" ] && { d=${a%/address}; echo "${d##*/}"; return 0; }
    done
    return 1
}

# network_data.json (Nova's) as a plan of lines, one awk pass over its flattened form:
#   link <mac> <mtu|->, addr <mac> <ip> <prefix>, route <mac> <net/prefix> <gateway>, dhcp <mac>,
#   dns <address>, skip <type> <link>. Netmasks are dotted quads (or a prefix length).
network_plan() {
    awk -F "$T" '
    function prefix(m,    o, n, i, x, p) {
        if (m !~ /\./) return m
        n = split(m, o, "."); p = 0
        for (i = 1; i <= n; i++) { x = o[i] + 0; while (x > 0) { p += x % 2; x = int(x / 2) } }
        return p
    }
    function dns(p,    k, s) {
        for (k = 0; (p "services/" k "/type") in v; k++) {
            s = p "services/" k "/"
            if (v[s "type"] == "dns" && v[s "address"] != "") print "dns " v[s "address"]
        }
    }
    { v[$1] = substr($0, length($1) + 2) }
    END {
        for (j = 0; ("links/" j "/id") in v; j++) {
            l = v["links/" j "/id"]; mac[l] = tolower(v["links/" j "/ethernet_mac_address"]); mtu[l] = v["links/" j "/mtu"]
        }
        for (i = 0; ("networks/" i "/type") in v; i++) {
            p = "networks/" i "/"; l = v[p "link"]; t = v[p "type"]
            if (!(l in mac) || mac[l] == "" || (t != "ipv4" && t != "ipv4_dhcp")) { print "skip " t " " l; continue }
            print "link " mac[l] " " (mtu[l] == "" ? "-" : mtu[l])
            if (t == "ipv4_dhcp") print "dhcp " mac[l]
            else {
                print "addr " mac[l] " " v[p "ip_address"] " " prefix(v[p "netmask"])
                for (k = 0; (p "routes/" k "/gateway") in v; k++) {
                    r = p "routes/" k "/"
                    print "route " mac[l] " " v[r "network"] "/" prefix(v[r "netmask"]) " " v[r "gateway"]
                }
            }
            dns(p)
        }
        dns("")
    }' "$1"
}

configure_network() {
    [ -s /run/network_data.json ] || return 0
    if ! awk -f $JSON /run/network_data.json > /run/network_data.flat; then
        say "network_data.json is not valid JSON; ignored"
        return 0
    fi
    network_plan /run/network_data.flat > /run/network.plan
    : > /run/net.configured
    while read -r what a b c; do
        case "$what" in
        skip) say "network_data: $a network on link $b not configured"; continue ;;
        dns) grep -qx "nameserver $a" /run/resolv.static 2>/dev/null || echo "nameserver $a" >> /run/resolv.static
             continue ;;
        esac
        if ! dev=$(iface_of "$a"); then
            say "network_data: no interface has MAC $a"
            continue
        fi
        case "$what" in
        link) ip link set "$dev" up
              [ "$b" = - ] || ip link set dev "$dev" mtu "$b" || say "cannot set mtu $b on $dev"
              echo "$dev" >> /run/net.configured ;;
        addr) ip addr add "$b/$c" dev "$dev" && echo "$b" > "/run/ip.$dev" ;;
        route) [ "$b" = 0.0.0.0/0 ] && b=default
               ip route add "$b" via "$c" dev "$dev" || say "cannot add route $b via $c on $dev" ;;
        dhcp) dhcp "$dev" ;;
        esac
    done < /run/network.plan
    [ -s /run/resolv.static ] && cp /run/resolv.static /etc/resolv.conf
}

# The seed's public keys for root (dropbear reads them at each login).
mkdir -p /root/.ssh
chmod 700 /root /root/.ssh
[ -s /run/public-keys ] && cp /run/public-keys /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys 2>/dev/null

configure_network
if [ -e /sys/class/net/eth0 ] && ! grep -qx eth0 /run/net.configured 2>/dev/null; then
    dhcp eth0
fi
ip=none
[ -s /run/ip.eth0 ] && ip=$(cat /run/ip.eth0)


wait $ssh_pid
keys=$(grep -c . /root/.ssh/authorized_keys 2>/dev/null)
say "ssh-host-key $(grep '^ssh-' /run/hostkey.out | cut -d ' ' -f 1,2) keys=${keys:-0}"

if [ -n "$user_data" ] && [ "$(head -c 2 "$user_data")" = "#!" ]; then
    chmod 700 "$user_data"
    sh "$user_data"
    say "user-data exit=$?"
fi

say "ready hostname=$hostname ip=$ip instance-id=$instance_id"
: > /run/ready

# A root shell on the serial console, as CirrOS gives a login there (so the serial console takes
# input), and one on the screen (the VNC display). Each starts again when it exits. The shell is the
# session leader that opens the tty, so the tty becomes its controlling terminal (Ctrl-C works).
export PS1="$hostname# "
console_shell() {
    while :; do
        setsid sh -c "exec sh -i <$1 >$1 2>&1"
        sleep 1
    done &
}
console_shell /dev/ttyS0
if [ -e /dev/tty1 ]; then
    echo "kvmfleet-guest $hostname ip=$ip instance-id=$instance_id" > /dev/tty1
    console_shell /dev/tty1
fi

while :; do
    sleep 3600
done
