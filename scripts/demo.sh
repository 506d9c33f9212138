#!/usr/bin/env bash
# make demo: a 3-host lab, the controller on its embedded SQLite store, the tiny image and default
# flavors registered, an anti-affinity server group of 3 launched with --count 3, one per host; then
# the API service (`kvmfleet serve`) on that store, identity bootstrapped, a clouds.yaml for the demo
# project, and the real `openstack` client listing the servers.
#   bash scripts/demo.sh         the demo (what `make demo` runs)
#   bash scripts/demo.sh down    stop the demo's service by its pid (`make demo-down`, before the lab goes)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
LAB="${DEMO_LAB:-lab}"
export KVMFLEET_STATE_DIR="${KVMFLEET_STATE_DIR:-$REPO/.cache/demo-state}"
export KVMFLEET_PROJECT=demo
KF="$REPO/.venv/bin/kvmfleet"
PY="$REPO/.venv/bin/python"
INV="/var/lib/kvmfleet-lab/$LAB/hosts.yml"
IMG="$REPO/.cache/images/tiny/kvmfleet-tiny.qcow2"
PID_FILE="$KVMFLEET_STATE_DIR/kvmfleet-serve.pid"
CLOUDS="$KVMFLEET_STATE_DIR/clouds.yaml"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# The demo's service, stopped by the pid its pid file names (SIGTERM: in-flight tasks finish or are handed back).
stop_service() {
  [ -f "$PID_FILE" ] || return 0
  local pid
  pid="$(cat "$PID_FILE")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "stopping kvmfleet serve (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then echo "kvmfleet serve (pid $pid) still running after 60s; killing it" >&2; kill -KILL "$pid"; fi
  fi
  rm -f "$PID_FILE"
}

if [ "${1:-}" = "down" ]; then
  stop_service
  exit 0
fi

# A secret kept in the state dir, mode 0600, generated once.
secret_file() {
  local file="$KVMFLEET_STATE_DIR/$1"
  if [ ! -s "$file" ]; then
    (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$file")
  fi
  chmod 600 "$file"
  echo "$file"
}

# The first free port from 8774 up on loopback (8774 unless something else holds it).
free_port() {
  "$PY" - <<'PYEOF'
import socket
for port in range(8774, 8874):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
PYEOF
}

stop_service   # a previous demo's service, if one is still running, goes before its store is touched

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

step "identity (Keystone v3): bootstrap admin, a member user for the demo project"
ADMIN_PW="$(secret_file admin-password)"
"$KF" identity bootstrap --admin-password-stdin < "$ADMIN_PW" >/dev/null
DEMO_PW="$(secret_file demo-password)"
if "$KF" user show demo >/dev/null 2>&1; then
  "$KF" user set demo --password-stdin < "$DEMO_PW" >/dev/null
else
  "$KF" user create demo --project demo --role member --password-stdin < "$DEMO_PW" >/dev/null
fi
echo "admin and demo passwords: $ADMIN_PW, $DEMO_PW (mode 0600)"

PORT="$(free_port)"
[ -n "$PORT" ] || { echo "no free port in 8774-8873 on 127.0.0.1" >&2; exit 1; }
export KVMFLEET_API_BIND="127.0.0.1:$PORT"
step "the API service: kvmfleet serve on $KVMFLEET_API_BIND (log $KVMFLEET_STATE_DIR/logs/)"
mkdir -p "$KVMFLEET_STATE_DIR/logs"
setsid "$KF" serve --bind "$KVMFLEET_API_BIND" </dev/null >>"$KVMFLEET_STATE_DIR/logs/serve-demo.out" 2>&1 &
for _ in $(seq 1 120); do
  if "$PY" -c 'import sys, httpx; sys.exit(httpx.get(sys.argv[1], timeout=2).status_code >= 500)' \
       "http://$KVMFLEET_API_BIND/identity" 2>/dev/null; then break; fi
  sleep 0.5
done
[ -s "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null \
  || { echo "kvmfleet serve did not start; see $KVMFLEET_STATE_DIR/logs/" >&2; tail -20 "$KVMFLEET_STATE_DIR/logs/serve-demo.out" >&2; exit 1; }
echo "kvmfleet serve pid $(cat "$PID_FILE"), http://$KVMFLEET_API_BIND"

step "clouds.yaml for the demo project ($CLOUDS, mode 0600)"
(umask 077; "$KF" cloud-config --user demo --project demo --name kvmfleet-demo --with-password-stdin \
   < "$DEMO_PW" > "$CLOUDS")
chmod 600 "$CLOUDS"
sed 's/^\( *password:\).*/\1 <in demo-password>/' "$CLOUDS"

step "openstack --os-cloud kvmfleet-demo server list (the real OpenStack client)"
export OS_CLIENT_CONFIG_FILE="$CLOUDS"
# Addresses come from the hosts' DHCP leases, which the service reads every few seconds: give it a moment.
for _ in $(seq 1 30); do
  nets=$("$REPO/.venv/bin/openstack" --os-cloud kvmfleet-demo server list -f value -c Networks)
  [ "$(grep -c 'default=[0-9]' <<<"$nets")" -ge 3 ] && break
  sleep 2
done
"$REPO/.venv/bin/openstack" --os-cloud kvmfleet-demo server list
listed=$("$REPO/.venv/bin/openstack" --os-cloud kvmfleet-demo server list -f value -c Name -c Status | sort)
want=$(printf 'web-1 ACTIVE\nweb-2 ACTIVE\nweb-3 ACTIVE')
[ "$listed" = "$want" ] || { printf 'expected the three demo servers ACTIVE, the client listed:\n%s\n' "$listed" >&2; exit 1; }

echo
echo "Use it:  export OS_CLIENT_CONFIG_FILE=$CLOUDS; .venv/bin/openstack --os-cloud kvmfleet-demo server list"
echo "Tear down: make demo-down"
