#!/bin/sh
# udhcpc event script of the kvmfleet tiny guest: sets the address and default route on
# bound/renew and records the address in /run/ip.<interface> for /init's ready line.

case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set dev "$interface" up
    rm -f "/run/ip.$interface"
    ;;
bound|renew)
    prefix=${mask:-24}
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$prefix" dev "$interface"
    if [ -n "$router" ]; then
        while ip route del default dev "$interface" 2>/dev/null; do :; done
        for gw in $router; do
            ip route add default via "$gw" dev "$interface" && break
        done
    fi
    : > /etc/resolv.conf
    for ns in $dns; do
        echo "nameserver $ns" >> /etc/resolv.conf
    done
    echo "$ip" > "/run/ip.$interface"
    ;;
esac
exit 0
