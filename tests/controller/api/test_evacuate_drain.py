"""Evacuate and drain on the lab, with real faults, against a `kvmfleet serve` of its own that beats every
INTERVAL s (service_down_time DOWN_TIME s).

- evacuate is refused while the host is up (nothing recorded);
- the first host is cut off (eth0 down in its network namespace) and reported down; one running server is
  evacuated with the real `openstack server evacuate`, then `kvmfleet host evacuate` rebuilds the rest
  (one running, one stopped) on the other hosts: same uuid, name and MAC, the stopped one stays stopped;
- the link comes back: the host is held down until the heartbeats' refresh removed the stale copies of the
  evacuated servers (never a live one), then it is up again and the evacuations are completed;
- `kvmfleet host drain` of a host with 3 servers (2 running, 1 stopped) moves all three off, the host
  disabled with the reason, the running ones running elsewhere, the stopped one stopped elsewhere.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_IMAGE, Service
from conftest_lab import LabHost, lab_hosts
from conftest_resources import V, call
from crash_tools import domain_states, wait_until

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
PROJECT = f"ev-{SUFFIX}"
INTERVAL, DOWN_TIME = 3, 20  # a loaded 2-core machine (TCG guests on the other lab) can delay a beat 10 s
UP_WAIT = 180  # how long a host that answers may take to be seen up again (a starved machine's beats time out)


@pytest.fixture(scope="module")
def lab(service_factory: Any, lab_inventory: Path) -> dict[str, Any]:
    svc = service_factory({"compute": {"heartbeat_interval": INTERVAL, "service_down_time": DOWN_TIME}})
    svc.cli("host", "import", "--inventory", str(lab_inventory))
    svc.cli("image", "register", "tiny", "--file", str(TINY_IMAGE))
    svc.cli("flavor", "create", "ev.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
    svc.cli("project", "create", PROJECT)
    out = {"svc": svc, "hosts": lab_hosts(lab_inventory), "names": []}
    yield out
    for name in out["names"]:
        svc.cli("server", "delete", name, "--project", PROJECT, check=False)
    for h in out["hosts"]:
        h.link(True)
        svc.cli("host", "enable", h.name, check=False)


def name(n: str) -> str:
    return f"{n}-{SUFFIX}"


def create_on(lab: dict[str, Any], host: LabHost, names: list[str], stopped: tuple[str, ...] = (),
              nics: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Servers built on `host` (the others disabled meanwhile), with the `--nic` specs given by name;
    {name: uuid}."""
    svc = lab["svc"]
    others = [h for h in lab["hosts"] if h is not host]
    # The host to build on answers (the last test cut a host off; CI load has starved every beat for 100 s).
    wait_until(f"{host.name} up", lambda: service_state(svc, host.name) == "up", UP_WAIT)
    for other in others:
        svc.cli("host", "disable", other.name, "--reason", "test: build on one host")
    try:
        made = {}
        for n in names:
            lab["names"].append(name(n))
            extra = [a for spec in (nics or {}).get(n, []) for a in ("--nic", spec)]
            row = json.loads(svc.cli("server", "create", name(n), "--flavor", "ev.nano", "--image", "tiny",
                                     "--project", PROJECT, *extra, "--wait", "-f", "json").stdout)[0]
            assert row["host"] == host.name, row
            made[n] = row["id"]
    finally:
        for other in others:
            svc.cli("host", "enable", other.name)
    for n in stopped:
        svc.cli("server", "stop", name(n), "--project", PROJECT)
    return made


def show(svc: Service, n: str) -> dict[str, Any]:
    return json.loads(svc.cli("server", "show", name(n), "--project", PROJECT, "-f", "json").stdout)


def service_state(svc: Service, host: str) -> str:
    rows = call(svc, svc.token(), "GET", f"{V}/os-services", "2.53").json()["services"]
    return next(s["state"] for s in rows if s["host"] == host)


def macs(host: LabHost, uuid: str) -> list[str]:
    return re.findall(r"<mac address='([0-9a-f:]+)'", host.run(f"virsh dumpxml kvmfleet-{uuid}"))


def others_up(svc: Any, hosts: list[Any], source: Any) -> None:
    """The destinations answer their heartbeats (a beat delayed by load must not leave no host to go to)."""
    for host in hosts:
        if host is not source:
            wait_until(f"{host.name} up", lambda host=host: service_state(svc, host.name) == "up", UP_WAIT)


def bridges(host: LabHost) -> str:
    return host.run("ip -o link show type bridge")


def test_evacuate_a_down_hosts_servers_then_its_stale_copies_go(lab: dict[str, Any]) -> None:
    svc, hosts = lab["svc"], lab["hosts"]
    source = hosts[0]
    # ev-a also has a port on a tenant network: it keeps its MAC and address and follows the server.
    net = json.loads(svc.cli("network", "create", "ev-net", "--project", PROJECT, "-f", "json").stdout)
    svc.cli("subnet", "create", "ev-sub", "--network", net["id"], "--cidr", "10.79.0.0/24")
    bridge = "kfbr" + net["id"].replace("-", "")[:11]
    made = create_on(lab, source, ["ev-a", "ev-b", "ev-c"], stopped=("ev-c",),
                     nics={"ev-a": ["net=default", f"net={net['id']},fixed-ip=10.79.0.10"]})
    assert bridge in bridges(source)

    def tenant_port() -> dict[str, Any]:
        rows = json.loads(svc.cli("port", "list", "--network", net["id"], "-f", "json").stdout)
        assert len(rows) == 1, rows
        return json.loads(svc.cli("port", "show", rows[0]["id"], "-f", "json").stdout)

    port = tenant_port()
    assert port["binding:host_id"] == source.name and port["device_id"] == made["ev-a"], port
    before = {n: macs(source, u) for n, u in made.items()}
    assert all(before.values()), before

    # Up: refused, nothing recorded.
    refused = svc.cli("server", "evacuate", name("ev-a"), "--project", PROJECT, check=False)
    assert refused.returncode == 1 and f"Compute service of {source.name} is still in use" in refused.stderr, refused
    assert show(svc, "ev-a")["task_state"] is None
    assert json.loads(svc.cli("server", "migrations", name("ev-a"), "--project", PROJECT, "-f", "json").stdout) == []

    source.link(False)
    try:
        wait_until(f"{source.name} down", lambda: service_state(svc, source.name) == "down", DOWN_TIME + 4 * INTERVAL + 30)
        # One server through the real client, then the rest of the host in one command.
        # (no --wait: python-openstackclient's compares its upper-case ACTIVE with the lower-cased status
        # and never returns)
        others_up(svc, hosts, source)
        svc.openstack("server", "evacuate", made["ev-a"])
        wait_until("ev-a rebuilt elsewhere", lambda: (s := show(svc, "ev-a"))["status"] == "ACTIVE"
                   and s["host"] != source.name, 300)
        others_up(svc, hosts, source)
        moved = json.loads(svc.cli("host", "evacuate", source.name, "-f", "json").stdout)
        assert sorted(m["server"] for m in moved) == sorted([name("ev-b"), name("ev-c")]), moved
        assert all(m["ok"] and m["dest"] and m["dest"] != source.name for m in moved), moved
        by_name = {n: show(svc, n) for n in made}
        assert {n: s["id"] for n, s in by_name.items()} == made
        assert {n: s["status"] for n, s in by_name.items()} == {"ev-a": "ACTIVE", "ev-b": "ACTIVE", "ev-c": "SHUTOFF"}
        live = {h.name: h for h in hosts}
        for n, s in by_name.items():
            dest = live[s["host"]]
            assert dest is not source
            assert macs(dest, made[n]) == before[n], (n, "MAC changed")
            want = "shut off" if n == "ev-c" else "running"
            assert dest.run(f"virsh domstate kvmfleet-{made[n]}").strip() == want, n
        a_dest = live[by_name["ev-a"]["host"]]
        moved_port = tenant_port()
        assert (moved_port["id"], moved_port["mac_address"], moved_port["fixed_ips"]) == \
            (port["id"], port["mac_address"], port["fixed_ips"]) and moved_port["binding:host_id"] == a_dest.name
        assert port["mac_address"] in before["ev-a"]
        assert f"kf-{net['id']}" in a_dest.run(f"virsh dumpxml kvmfleet-{made['ev-a']}")
        assert bridge in bridges(a_dest)
        migrations = json.loads(svc.cli("server", "migrations", name("ev-a"), "--project", PROJECT, "-f", "json").stdout)
        assert [(m["type"], m["status"], m["source"]) for m in migrations] == [("evacuation", "done", source.name)]
        # While it is cut off, the source still holds its copies: they are not counted, nor reaped.
        assert service_state(svc, source.name) == "down"
    finally:
        source.link(True)

    def up_and_clean() -> bool:
        if service_state(svc, source.name) != "up":
            return False
        # Up only once the stale copies are gone: checked the moment it is seen up.
        left = [u for u, where in domain_states([source]).items() if u in made.values()]
        assert not left, f"{source.name} is up with stale copies of evacuated servers: {left}"
        return True

    wait_until(f"{source.name} up again, its stale copies removed", up_and_clean, 6 * INTERVAL + 90)
    states = domain_states(hosts)
    for n, uuid in made.items():
        assert list(states[uuid]) == [show(svc, n)["host"]], (n, states[uuid])  # exactly one copy, the live one
    migrations = json.loads(svc.cli("server", "migrations", name("ev-c"), "--project", PROJECT, "-f", "json").stdout)
    assert [m["status"] for m in migrations] == ["completed"]
    log = (svc.state / "logs" / "kvmfleet-serve.log").read_text()
    assert f"server {name('ev-a')} evacuated from {source.name}" in log
    # Back up without ev-a's port: the network leaves the source (the periodic converge).
    wait_until(f"{bridge} gone from {source.name}", lambda: bridge not in bridges(source) or None, 90, 1)
    for n in made:  # ordinary servers on their new hosts
        svc.cli("server", "delete", name(n), "--project", PROJECT)
    assert not [u for u in domain_states(hosts) if u in made.values()]
    assert json.loads(svc.cli("port", "list", "--network", net["id"], "-f", "json").stdout) == []
    wait_until(f"{bridge} gone from every host", lambda: not any(bridge in bridges(h) for h in hosts) or None, 90, 1)
    svc.cli("network", "delete", net["id"])


def test_drain_moves_every_server_off_a_host(lab: dict[str, Any]) -> None:
    svc, hosts = lab["svc"], lab["hosts"]
    host = hosts[1]
    made = create_on(lab, host, ["dr-a", "dr-b", "dr-c"], stopped=("dr-c",))
    for h in hosts:  # the host and its destinations (CI load has starved every beat for 100 s at once)
        wait_until(f"{h.name} up", lambda h=h: service_state(svc, h.name) == "up", UP_WAIT)
    proc = svc.cli("host", "drain", host.name, "--reason", "kernel upgrade", "-f", "json")
    report = {r["server"]: r for r in json.loads(proc.stdout)}
    assert set(report) == {name(n) for n in made}
    assert all(r["ok"] for r in report.values()), report
    assert report[name("dr-a")]["how"] == "live-migration" and report[name("dr-c")]["how"] == "migrate"
    shown = json.loads(svc.cli("host", "show", host.name, "-f", "json").stdout)
    assert (shown["enabled"], shown["disabled_reason"], shown["instances"]) == (False, "kernel upgrade", 0), shown
    states = domain_states(hosts)
    for n, uuid in made.items():
        s = show(svc, n)
        assert s["host"] != host.name and list(states[uuid]) == [s["host"]], (n, s["host"], states[uuid])
        assert s["status"] == ("SHUTOFF" if n == "dr-c" else "ACTIVE"), (n, s["status"])
        assert states[uuid][s["host"]] == ("shut off" if n == "dr-c" else "running")
    # Nothing new lands on the drained host.
    decision = json.loads(svc.cli("server", "create", name("dr-probe"), "--flavor", "ev.nano", "--image", "tiny",
                                  "--project", PROJECT, "--dry-run", "-f", "json").stdout)
    assert host.name in decision["rejected"], decision
    svc.cli("host", "enable", host.name)
