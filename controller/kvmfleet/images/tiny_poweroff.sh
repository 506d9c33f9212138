#!/bin/sh
# Run by busybox acpid on the ACPI power button (PWRF): a graceful stop for libvirt.
echo "kvmfleet-guest: power button pressed, powering off" > /dev/console
sync
poweroff -f
