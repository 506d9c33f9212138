#!/usr/bin/env bash
# make demo: a 3-host lab, the controller on its embedded SQLite store, the tiny image and default
# flavors registered, an anti-affinity server group of 3 launched with --count 3, one per host.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
LAB="${DEMO_LAB:-lab}"
export KVMFLEET_STATE_DIR="${KVMFLEET_STATE_DIR:-$REPO/.cache/demo-state}"
export KVMFLEET_PROJECT=demo
KF="$REPO/.venv/bin/kvmfleet"
INV="/var/lib/kvmfleet-lab/$LAB/hosts.yml"
IMG="$REPO/.cache/images/tiny/kvmfleet-tiny.qcow2"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "lab of 3 compute hosts ($LAB)"
"$KF" lab up --name "$LAB" --hosts 3

step "controller store (SQLite under $KVMFLEET_STATE_DIR)"
"$KF" db upgrade
# A fresh lab has none of the previous demo's domains: forget the previous demo's store.
if [ -f "$KVMFLEET_STATE_DIR/kvmfleet.db" ] && [ -f "$KVMFLEET_STATE_DIR/lab.json" ] \
   && ! cmp -s "$KVMFLEET_STATE_DIR/lab.json" "/var/lib/kvmfleet-lab/$LAB/lab.json"; then
  rm -f "$KVMFLEET_STATE_DIR"/kvmfleet.db*
  "$KF" db upgrade
fi
cp "/var/lib/kvmfleet-lab/$LAB/lab.json" "$KVMFLEET_STATE_DIR/lab.json"

step "hosts (imported from the lab inventory; facts gathered over SSH)"
"$KF" host import --inventory "$INV"

step "flavors and the tiny image"
"$KF" flavor create-defaults >/dev/null
"$KF" flavor list
"$KF" image show tiny >/dev/null 2>&1 || "$KF" image register tiny --file "$IMG" >/dev/null
"$KF" image list
"$KF" project show demo >/dev/null 2>&1 || "$KF" project create demo >/dev/null

step "previous demo servers removed"
old=$("$KF" server list -f json | python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin)))')
if [ -n "$old" ]; then "$KF" server delete $old; fi
"$KF" server-group show demo-spread >/dev/null 2>&1 || "$KF" server-group create demo-spread --policy anti-affinity

step "kvmfleet server create web --count 3 --group demo-spread (anti-affinity)"
"$KF" server create web --count 3 --group demo-spread --flavor m1.nano --image tiny --wait

step "servers"
"$KF" server list

step "each guest's ready line (serial console)"
for s in web-1 web-2 web-3; do
  line=""
  for _ in $(seq 1 60); do   # the guest boots in seconds; allow for a busy machine
    line=$("$KF" server console-log "$s" | grep -m1 'kvmfleet-guest: ready' || true)
    [ -n "$line" ] && break
    sleep 2
  done
  [ -n "$line" ] || { echo "$s: no ready line on its serial console after 120s" >&2; exit 1; }
  echo "$s: $line"
done
echo
echo "Tear down: make demo-down"
