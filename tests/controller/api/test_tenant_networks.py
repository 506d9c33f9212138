"""Tenant networks on the lab with real guests and real packets, driven by the real `openstack` client.

Project A has network net-a (VXLAN, 10.77.0.0/24) and three tiny guests; project B has net-b with the same
CIDR (overlapping across projects is allowed: another segment). Every guest also has a NIC on the provider
network `default` (its host's libvirt NAT network, DHCP): the test's way in, by SSH from the lab host's
network namespace with the private key that `openstack keypair create` printed.

- a1 (host 1, group default) pings w2 (host 2, group web: ICMP and tcp/80 in) and fetches its busybox httpd
  page over net-a (VXLAN between the hosts);
- b1 (project B, net-b, given an address of A's range) reaches neither;
- a rule for tcp/8080 added to web opens w2's port 8080 for a1 within seconds, removing it closes it;
- the default group's same-group rule: a3 (default) reaches a1, w2 (web) does not;
- SSH with the key logs in, another key is refused (no password is ever set);
- a port hot-plugged into the running a1 appears in the guest with its MAC and goes again;
- a deleted server's address is free again;
- a port keeps its MAC and address across live migration, a cold migration to the other host, a resize in
  place and a rebuild, and the guest answers on it with its key after each.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_IMAGE
from conftest_lab import LabHost, lab_hosts
from crash_tools import wait_until

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
PROJECT_A, PROJECT_B = f"na-{SUFFIX}", f"nb-{SUFFIX}"
CIDR = "10.77.0.0/24"

HTTPD = """#!/bin/sh
mkdir -p /www
echo "page-from-$(hostname)" > /www/index.html
httpd -p 80 -h /www
httpd -p 8080 -h /www
"""


@pytest.fixture(scope="module")
def env(service_factory: Any, lab_inventory: Path, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[dict[str, Any]]:
    hosts = lab_hosts(lab_inventory)
    assert len(hosts) >= 2, "the tenant network tests need two lab hosts"
    svc = service_factory({})
    svc.cli("host", "import", "--inventory", str(lab_inventory))
    svc.cli("image", "register", "tiny", "--file", str(TINY_IMAGE))
    svc.cli("flavor", "create", "net.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
    svc.cli("flavor", "create", "net.micro", "--vcpus", "1", "--ram", "160", "--disk", "1")
    svc.user(f"na-user-{SUFFIX}", PROJECT_A)
    svc.user(f"nb-user-{SUFFIX}", PROJECT_B)
    tmp = tmp_path_factory.mktemp("tenant-networks")
    (tmp / "httpd.sh").write_text(HTTPD)
    e = {"svc": svc, "hosts": hosts, "a": f"na-user-{SUFFIX}", "b": f"nb-user-{SUFFIX}", "tmp": tmp}
    yield e
    for server in svc.openstack("server", "list", "--all-projects", as_json=True, check=False) or []:
        svc.openstack("server", "delete", "--wait", server["ID"], check=False)


def os_(env: dict[str, Any], cloud: str, *args: str, **kw: Any) -> Any:
    return env["svc"].openstack(*args, cloud=env[cloud], **kw)


def addresses(env: dict[str, Any], server: str) -> dict[str, list[str]]:
    """{network name: [addresses]} of the server, from the compute API."""
    out = env["svc"].openstack("server", "show", server, as_json=True)["addresses"]
    if isinstance(out, str):  # older clients: "net=1.2.3.4, 5.6.7.8; other=..."
        parsed: dict[str, list[str]] = {}
        for part in filter(None, (p.strip() for p in out.split(";"))):
            name, _, ips = part.partition("=")
            parsed[name] = [a.strip() for a in ips.split(",") if a.strip()]
        return parsed
    return {name: [a["addr"] if isinstance(a, dict) else a for a in ips] for name, ips in out.items()}


def make_server(env: dict[str, Any], cloud: str, name: str, host: str, networks: list[str], *extra: str,
                wait_for: tuple[str, ...] = ()) -> dict[str, Any]:
    """A tiny guest of `cloud`'s project on `host` (the other hosts disabled while it is built), with that
    project's key pair and the httpd user data; waits until it has an address on each network."""
    svc = env["svc"]
    others = [h.name for h in env["hosts"] if h.name != host]
    for other in others:
        svc.cli("host", "disable", other, "--reason", "tenant network test: build elsewhere")
    try:
        nets = [a for n in networks for a in ("--network", n)]
        out = os_(env, cloud, "server", "create", "--flavor", "net.nano", "--image", "tiny", "--user-data",
                  str(env["tmp"] / "httpd.sh"), "--key-name", f"key-{cloud}", *nets, *extra, name, "--wait",
                  as_json=True)
    finally:
        for other in others:
            svc.cli("host", "enable", other)
    assert out["status"] == "ACTIVE", out
    assert svc.openstack("server", "show", out["id"], as_json=True)["OS-EXT-SRV-ATTR:host"] == host, out
    wanted = (*networks, *wait_for)

    def ready() -> dict[str, list[str]] | None:
        a = addresses(env, out["id"])
        return a if all(a.get(n) for n in wanted) else None

    info = wait_until(f"{name} has its addresses", ready, 180, 2)
    return {"id": out["id"], "host": next(h for h in env["hosts"] if h.name == host), "addresses": info,
            "cloud": cloud}


def guest(env: dict[str, Any], server: dict[str, Any], command: str, key: Path | None = None,
          timeout: int = 60) -> subprocess.CompletedProcess[str]:
    """`command` in the guest, by SSH from its lab host's network namespace to its provider address."""
    host: LabHost = server["host"]
    key = key or env[f"key-{server['cloud']}"]
    argv = ["ip", "netns", "exec", host.netns, "ssh", "-i", str(key), "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={server.get('known_hosts', env['tmp'] / 'known_hosts')}",
            "-o", "PasswordAuthentication=no",
            "-o", "IdentitiesOnly=yes", f"root@{server['addresses']['default'][0]}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def ssh_ready(env: dict[str, Any], server: dict[str, Any]) -> None:
    wait_until(f"ssh into {server['id']}", lambda: guest(env, server, "true").returncode == 0 or None, 120, 2)


def fetch(env: dict[str, Any], src: dict[str, Any], ip: str, port: int = 80) -> str | None:
    """The page the guest `src` gets from ip:port (an HTTP GET by busybox nc: its wget crashes with -T), None
    when it gets nothing within 3 s."""
    proc = guest(env, src, f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port} 2>/dev/null | tail -n 1")
    return proc.stdout.strip() or None


def pings(env: dict[str, Any], src: dict[str, Any], ip: str) -> bool:
    return guest(env, src, f"ping -c 2 -W 2 {ip} >/dev/null 2>&1 && echo ok || echo no").stdout.strip() == "ok"


@pytest.fixture(scope="module")
def net(env: dict[str, Any]) -> dict[str, Any]:
    """Both projects' networks and key pairs, the web group and the four guests."""
    for cloud in ("a", "b"):
        private = os_(env, cloud, "keypair", "create", f"key-{cloud}").stdout
        assert "PRIVATE KEY" in private
        path = env["tmp"] / f"key-{cloud}"
        path.write_text(private)
        path.chmod(0o600)
        env[f"key-{cloud}"] = path
    for cloud, name in (("a", "net-a"), ("b", "net-b")):
        os_(env, cloud, "network", "create", name)
        os_(env, cloud, "subnet", "create", "--network", name, "--subnet-range", CIDR, f"{name}-sub")
    web = os_(env, "a", "security", "group", "create", "web", as_json=True)
    os_(env, "a", "security", "group", "rule", "create", "--ingress", "--protocol", "icmp", web["id"])
    os_(env, "a", "security", "group", "rule", "create", "--ingress", "--protocol", "tcp", "--dst-port", "80",
        web["id"])
    h1, h2 = env["hosts"][0].name, env["hosts"][1].name
    a1 = make_server(env, "a", f"a1-{SUFFIX}", h1, ["default", "net-a"])
    w2 = make_server(env, "a", f"w2-{SUFFIX}", h2, ["default", "net-a"], "--security-group", "web")
    a3 = make_server(env, "a", f"a3-{SUFFIX}", h2, ["default", "net-a"])
    # project B's guest asks for an address of A's range that A does not use: only the segments differ
    b_net = os_(env, "b", "network", "show", "net-b", as_json=True)["id"]
    b1 = make_server(env, "b", f"b1-{SUFFIX}", h1, ["default"], "--nic", f"net-id={b_net},v4-fixed-ip=10.77.0.200",
                     wait_for=("net-b",))
    for server in (a1, w2, a3, b1):
        ssh_ready(env, server)
    return {"a1": a1, "w2": w2, "a3": a3, "b1": b1, "web": web["id"]}


def ip(server: dict[str, Any], network: str = "net-a") -> str:
    return server["addresses"][network][0]


def test_guests_on_two_hosts_reach_each_other_over_the_tenant_network(env: dict[str, Any], net: dict) -> None:
    a1, w2, a3 = net["a1"], net["w2"], net["a3"]
    assert a1["host"].name != w2["host"].name
    assert ip(a1).startswith("10.77.0.") and ip(w2).startswith("10.77.0.") and ip(a1) != ip(w2)
    # the guest configured its fixed address from the config drive's network_data.json
    assert f"inet {ip(a1)}/24" in guest(env, a1, "ip -4 addr show").stdout
    assert pings(env, a1, ip(w2))  # web lets ICMP in
    assert fetch(env, a1, ip(w2)) == f"page-from-w2-{SUFFIX}"  # and tcp/80
    # the default group's same-group rule: a3 (a member) reaches a1, w2 (web only) does not
    assert pings(env, a3, ip(a1))
    assert fetch(env, a3, ip(a1)) == f"page-from-a1-{SUFFIX}"
    assert not pings(env, w2, ip(a1))
    assert fetch(env, w2, ip(a1)) is None


def test_another_tenants_network_reaches_neither(env: dict[str, Any], net: dict) -> None:
    b1 = net["b1"]
    assert ip(b1, "net-b") == "10.77.0.200"
    assert "inet 10.77.0.200/24" in guest(env, b1, "ip -4 addr show").stdout
    for target in (net["a1"], net["w2"]):
        assert not pings(env, b1, ip(target)), f"b1 reached {ip(target)} across tenants"
        assert fetch(env, b1, ip(target)) is None


def test_security_group_rule_opens_and_closes_a_port_on_a_running_guest(env: dict[str, Any], net: dict) -> None:
    a1, w2 = net["a1"], net["w2"]
    assert fetch(env, a1, ip(w2), 8080) is None  # web allows tcp/80 only
    uptime = guest(env, w2, "cut -d. -f1 /proc/uptime").stdout.strip()
    rule = os_(env, "a", "security", "group", "rule", "create", "--ingress", "--protocol", "tcp", "--dst-port",
               "8080", net["web"], as_json=True)
    started = time.monotonic()
    wait_until("tcp/8080 open on w2", lambda: fetch(env, a1, ip(w2), 8080), 30, 0.5)
    opened = time.monotonic() - started
    os_(env, "a", "security", "group", "rule", "delete", rule["id"])
    wait_until("tcp/8080 closed on w2", lambda: fetch(env, a1, ip(w2), 8080) is None or None, 30, 0.5)
    assert opened < 30
    assert fetch(env, a1, ip(w2)) == f"page-from-w2-{SUFFIX}"
    # the guest was never restarted
    assert int(guest(env, w2, "cut -d. -f1 /proc/uptime").stdout.strip()) >= int(uptime)


def test_key_pair_logs_in_and_another_key_is_refused(env: dict[str, Any], net: dict) -> None:
    a1 = net["a1"]
    assert guest(env, a1, "hostname").stdout.strip() == f"a1-{SUFFIX}"
    refused = guest(env, a1, "true", key=env["key-b"])
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr


def test_interface_attach_and_detach_on_a_running_guest(env: dict[str, Any], net: dict) -> None:
    a1 = net["a1"]
    before = set(guest(env, a1, "ls /sys/class/net").stdout.split())
    port = os_(env, "a", "port", "create", "--network", "net-a", f"hot-{SUFFIX}", as_json=True)
    os_(env, "a", "server", "add", "port", a1["id"], port["id"])
    new = wait_until("a NIC appears in a1",
                     lambda: set(guest(env, a1, "ls /sys/class/net").stdout.split()) - before or None, 60, 1)
    assert len(new) == 1, new
    nic = new.pop()
    assert guest(env, a1, f"cat /sys/class/net/{nic}/address").stdout.strip() == port["mac_address"]
    listed = {p["ID"] for p in os_(env, "a", "port", "list", "--server", a1["id"], as_json=True)}
    assert port["id"] in listed
    os_(env, "a", "server", "remove", "port", a1["id"], port["id"])
    wait_until(f"{nic} leaves a1", lambda: nic not in guest(env, a1, "ls /sys/class/net").stdout.split() or None,
               60, 1)
    shown = os_(env, "a", "port", "show", port["id"], as_json=True)
    assert shown["device_id"] in ("", None), shown  # a port given to the server is only unbound
    os_(env, "a", "port", "delete", port["id"])


def test_deleted_server_releases_its_address(env: dict[str, Any], net: dict) -> None:
    h1 = env["hosts"][0].name
    tmp = make_server(env, "a", f"tmp-{SUFFIX}", h1, ["net-a", "default"])
    address = ip(tmp)
    net_a = os_(env, "a", "network", "show", "net-a", as_json=True)["id"]
    ports = os_(env, "a", "port", "list", "--server", tmp["id"], "--network", net_a, as_json=True)
    assert len(ports) == 1, ports
    env["svc"].openstack("server", "delete", "--wait", tmp["id"])
    held = json.dumps([p.get("Fixed IP Addresses") for p in os_(env, "a", "port", "list", as_json=True)])
    assert f'"{address}"' not in held and f"'{address}'" not in held, held
    again = os_(env, "a", "port", "create", "--network", "net-a", "--fixed-ip", f"ip-address={address}",
                f"again-{SUFFIX}", as_json=True)
    assert address in json.dumps(again["fixed_ips"])
    os_(env, "a", "port", "delete", again["id"])


def wait_status(env: dict[str, Any], server: dict[str, Any], status: str) -> None:
    """Project a's server shows `status` (openstack server show), within 2 minutes."""
    wait_until(f"server {server['id']} {status}",
               lambda: os_(env, "a", "server", "show", server["id"], as_json=True)["status"] == status or None, 120, 2)


def test_port_keeps_its_mac_and_address_across_live_migration_and_stop_start(env: dict[str, Any], net: dict) -> None:
    a1, a3 = net["a1"], net["a3"]
    h1 = env["hosts"][0].name
    net_a = os_(env, "a", "network", "show", "net-a", as_json=True)["id"]
    tenant_ports = ("port", "list", "--server", a3["id"], "--network", net_a, "--long")
    before = os_(env, "a", *tenant_ports, as_json=True)
    assert len(before) == 1, before
    env["svc"].openstack("server", "migrate", "--live-migration", "--host", h1, "--wait", a3["id"])
    shown = env["svc"].openstack("server", "show", a3["id"], as_json=True)
    assert shown["OS-EXT-SRV-ATTR:host"] == h1 and shown["status"] == "ACTIVE", shown
    after = os_(env, "a", *tenant_ports, as_json=True)
    assert [(p["ID"], p["MAC Address"], json.dumps(p["Fixed IP Addresses"])) for p in after] == \
        [(p["ID"], p["MAC Address"], json.dumps(p["Fixed IP Addresses"])) for p in before]
    a3["host"] = next(h for h in env["hosts"] if h.name == h1)
    assert pings(env, a1, ip(a3))  # same group, now on the same host: over the bridge, filters moved along
    os_(env, "a", "server", "stop", a3["id"])
    wait_status(env, a3, "SHUTOFF")
    os_(env, "a", "server", "start", a3["id"])
    wait_status(env, a3, "ACTIVE")
    wait_until("a3 answers on its address again", lambda: pings(env, a1, ip(a3)) or None, 120, 2)
    assert [(p["MAC Address"], json.dumps(p["Fixed IP Addresses"])) for p in os_(env, "a", *tenant_ports, as_json=True)] \
        == [(p["MAC Address"], json.dumps(p["Fixed IP Addresses"])) for p in before]


def test_port_keeps_its_mac_and_address_across_cold_migration_resize_and_rebuild(env: dict[str, Any],
                                                                                net: dict) -> None:
    a1 = net["a1"]
    h1, h2 = env["hosts"][0].name, env["hosts"][1].name
    r = make_server(env, "a", f"r-{SUFFIX}", h1, ["default", "net-a"])
    try:
        net_a = os_(env, "a", "network", "show", "net-a", as_json=True)["id"]
        tenant_ports = ("port", "list", "--server", r["id"], "--network", net_a, "--long")

        def port_view() -> list[tuple[str, str, str]]:
            return [(p["ID"], p["MAC Address"], json.dumps(p["Fixed IP Addresses"]))
                    for p in os_(env, "a", *tenant_ports, as_json=True)]

        before = port_view()
        assert len(before) == 1, before
        r["known_hosts"] = env["tmp"] / "known_hosts-r"  # dropbear makes a new host key each boot
        ssh_ready(env, r)
        env["svc"].openstack("server", "migrate", "--host", h2, "--wait", r["id"], timeout=900)  # cold
        env["svc"].openstack("server", "resize", "confirm", r["id"])
        wait_status(env, r, "ACTIVE")  # after the confirm
        shown = env["svc"].openstack("server", "show", r["id"], as_json=True)
        assert shown["OS-EXT-SRV-ATTR:host"] == h2, shown
        assert port_view() == before
        r["host"] = env["hosts"][1]
        r["known_hosts"] = env["tmp"] / "known_hosts-r-moved"
        tenant_ip = ip(r)

        def both() -> dict[str, list[str]] | None:
            a = addresses(env, r["id"])
            return a if a.get("default") and a.get("net-a") else None

        r["addresses"] = wait_until("r has its addresses on host 2", both, 180, 2)  # a new provider lease there
        assert r["addresses"]["net-a"] == [tenant_ip]
        ssh_ready(env, r)  # the key came along in the seed
        wait_until("r answers a1 over VXLAN after the move", lambda: pings(env, a1, ip(r)) or None, 60, 2)
        os_(env, "a", "server", "resize", "--flavor", "net.micro", "--wait", r["id"], timeout=900)  # fits: in place
        os_(env, "a", "server", "resize", "confirm", r["id"])
        wait_status(env, r, "ACTIVE")  # after the resize
        assert port_view() == before
        r["known_hosts"] = env["tmp"] / "known_hosts-r-resized-in-place"
        ssh_ready(env, r)
        wait_until("r answers a1 after the resize", lambda: pings(env, a1, ip(r)) or None, 60, 2)
        os_(env, "a", "server", "rebuild", "--image", "tiny", "--wait", r["id"], timeout=900)
        assert port_view() == before
        r["known_hosts"] = env["tmp"] / "known_hosts-r-rebuilt"
        ssh_ready(env, r)  # a fresh disk: the key and address come from the seed again
        assert before[0][1] in guest(env, r, "cat /sys/class/net/*/address").stdout
        wait_until("r answers a1 after the rebuild", lambda: pings(env, a1, ip(r)) or None, 60, 2)
    finally:
        env["svc"].openstack("server", "delete", "--wait", r["id"])


def test_server_add_and_remove_security_group_on_a_running_guest(env: dict[str, Any], net: dict) -> None:
    a1, w2 = net["a1"], net["w2"]
    assert not pings(env, w2, ip(a1))  # a1 is in default only: w2 (web) is no member
    os_(env, "a", "server", "add", "security", "group", a1["id"], "web")
    wait_until("web's ICMP rule on a1", lambda: pings(env, w2, ip(a1)) or None, 30, 0.5)
    groups = {g["name"] for g in os_(env, "a", "server", "show", a1["id"], as_json=True)["security_groups"]}
    assert groups == {"default", "web"}, groups
    os_(env, "a", "server", "remove", "security", "group", a1["id"], "web")
    wait_until("web's ICMP rule gone from a1", lambda: not pings(env, w2, ip(a1)) or None, 30, 0.5)


def test_network_leaves_a_host_with_its_last_port(env: dict[str, Any], net: dict) -> None:
    """After the live migration above only w2 has a port of net-a on host 2: deleting it removes the bridge."""
    h2 = env["hosts"][1]
    net_id = os_(env, "a", "network", "show", "net-a", as_json=True)["id"]
    bridge = "kfbr" + net_id.replace("-", "")[:11]
    assert bridge in h2.run("ip -o link show type bridge"), "net-a's bridge is not on host 2"
    env["svc"].openstack("server", "delete", "--wait", net["w2"]["id"])
    wait_until(f"{bridge} gone from {h2.name}", lambda: bridge not in h2.run("ip -o link show type bridge") or None,
               60, 1)
    assert "kf-" + net_id not in h2.run("virsh -q net-list --all --name")
