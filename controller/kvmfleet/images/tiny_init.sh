#!/bin/busybox sh
# /init of the kvmfleet tiny guest (PID 1, runs from the initramfs; the disk only holds the bootloader).
# Reads a NoCloud (label cidata) or config-drive (label config-2) seed, runs a #! user-data script,
# brings eth0 up with udhcpc, prints the ready line on the console, powers off on the ACPI power button.

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

# The power button: busybox acpid maps KEY_POWER from /dev/input/event* to /etc/acpi/PWRF/00000080.
acpid -c /etc/acpi -l /run/acpid.log

hostname=kvmfleet-guest
instance_id=none
user_data=

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
            fi
            [ -f /mnt/seed/user-data ] && user_data=/mnt/seed/user-data
            ;;
        *)
            md=/mnt/seed/openstack/latest/meta_data.json
            if [ -f "$md" ]; then
                v=$(json_string uuid "$md"); [ -n "$v" ] && instance_id=$v
                v=$(json_string hostname "$md"); [ -n "$v" ] && hostname=$v
            fi
            [ -f /mnt/seed/openstack/latest/user_data ] && user_data=/mnt/seed/openstack/latest/user_data
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
ip=none
if [ -e /sys/class/net/eth0 ]; then
    ip link set eth0 up
    # Bounded: up to 10 discovers 3 s apart (dnsmasq may first ping a new address for up to 3 s, and
    # a loaded TCG host answers late); without a lease by then the ready line says ip=none and udhcpc
    # goes on trying in the background (-b), as it stays there to renew a lease it got.
    udhcpc -i eth0 -b -t 10 -T 3 -A 3 -s /usr/share/udhcpc/default.script -p /run/udhcpc.eth0.pid \
        >/dev/null 2>&1
    [ -s /run/ip.eth0 ] && ip=$(cat /run/ip.eth0)
fi

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
