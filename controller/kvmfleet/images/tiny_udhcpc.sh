#!/bin/sh
# udhcpc event script of the kvmfleet tiny guest: sets the address and default route on
# bound/renew and records the address in /run/ip.<interface> for /init's ready line. A lease bound
# after the ready line (udhcpc went on in the background) is announced on the console.

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
    # DNS servers the seed's network_data.json names win over the lease's.
    if [ ! -s /run/resolv.static ]; then
        : > /etc/resolv.conf
        for ns in $dns; do
            echo "nameserver $ns" >> /etc/resolv.conf
        done
    fi
    echo "$ip" > "/run/ip.$interface"
    if [ "$1" = bound ] && [ -e /run/ready ]; then
        echo "kvmfleet-guest: bound interface=$interface ip=$ip" > /dev/console
    fi
    ;;
esac
exit 0
