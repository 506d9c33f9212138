"""The unmodified python-openstackclient (`openstack`, from PyPI) driving a real `kvmfleet serve` whose
servers run on the lab's hosts: every command of issue 7's list, checked against what the hosts run.

One server is built for the module and taken through the whole lifecycle in file order (power actions,
resize confirm and revert, rebuild, console, events); it is deleted with `server delete --wait` last.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_IMAGE, CommandError, Service
from conftest_lab import LabHost, lab_hosts

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
MEMBER = f"osc-{SUFFIX}"          # the tenant: user and project of the same name, role member
SERVER = f"osc-vm-{SUFFIX}"
KEY = f"osc-key-{SUFFIX}"
GROUP = f"osc-group-{SUFFIX}"
IMAGE = f"osc-image-{SUFFIX}"
AGGREGATE = f"osc-agg-{SUFFIX}"
ZONE = f"osc-az-{SUFFIX}"
READY = re.compile(r"kvmfleet-guest: ready hostname=(\S+) ip=(\S+) instance-id=(\S+)")
POWER_STATES = {0: "NOSTATE", 1: "Running", 3: "Paused", 4: "Shutdown", 6: "Crashed", 7: "Suspended"}


def osc(svc: Service, *args: str, **kw: Any) -> Any:
    return svc.openstack(*args, as_json=True, **kw)


def tenant(svc: Service, *args: str, as_json: bool = True, **kw: Any) -> Any:
    """The member of project MEMBER: the server, its key pair, group and image are theirs."""
    return svc.openstack(*args, cloud=MEMBER, as_json=as_json, **kw)


def flavor_name(shown: Any) -> str:
    """`server show`'s flavor: a dict with original_name from 2.47, else 'name (id)'."""
    if isinstance(shown, dict):
        return shown["original_name"]
    return str(shown).split(" (")[0]


def power_state(shown: dict) -> str:
    value = shown["OS-EXT-STS:power_state"]
    return POWER_STATES.get(value, str(value)) if isinstance(value, int) else value


def wait_status(svc: Service, server: str, want: str, timeout: float = 600) -> dict:
    """Poll `openstack server show ID` (as admin: host attributes included; an admin finds another
    project's server by id, not by name) until the status is `want`."""
    deadline = time.monotonic() + timeout
    shown: dict = {}
    while time.monotonic() < deadline:
        shown = osc(svc, "server", "show", server)
        if shown["status"] == want:
            return shown
        if shown["status"] == "ERROR" and want != "ERROR":
            raise AssertionError(f"{server} went to ERROR waiting for {want}: {shown.get('fault')}")
        time.sleep(3)
    raise AssertionError(f"{server} still {shown.get('status')}/{shown.get('OS-EXT-STS:task_state')} "
                         f"after {timeout}s waiting for {want}")


def host_of(hosts: list[LabHost], name: str) -> LabHost:
    return next(h for h in hosts if h.name == name)


def domstate(host: LabHost, domain: str) -> str:
    return host.run(f"virsh domstate {domain}").strip()


def wait_ready_line(svc: Service, server: str, timeout: float = 300) -> re.Match:
    deadline = time.monotonic() + timeout
    log = ""
    while time.monotonic() < deadline:
        log = tenant(svc, "console", "log", "show", server, as_json=False).stdout
        found = READY.search(log)
        if found:
            return found
        time.sleep(5)
    raise AssertionError(f"no ready line on {server}'s console after {timeout}s: {log[-2000:]}")


@pytest.fixture(scope="module")
def hosts(lab_inventory: Path) -> list[LabHost]:
    return lab_hosts(lab_inventory)


@pytest.fixture(scope="module")
def member(compute_service: Service) -> Service:
    compute_service.user(MEMBER, project=MEMBER, role="member")
    return compute_service


@pytest.fixture(scope="module")
def uploaded_image(member: Service) -> Any:
    """`openstack image create --file` of the tiny image by the tenant (used by the rebuild below)."""
    image = tenant(member, "image", "create", "--file", str(TINY_IMAGE), "--disk-format", "qcow2",
                   "--container-format", "bare", IMAGE)
    yield image
    tenant(member, "image", "delete", image["id"], check=False, as_json=False)


@pytest.fixture(scope="module")
def keypair(member: Service) -> Any:
    proc = tenant(member, "keypair", "create", KEY, as_json=False)
    yield proc.stdout
    tenant(member, "keypair", "delete", KEY, check=False, as_json=False)


@pytest.fixture(scope="module")
def server_group(member: Service) -> Any:
    group = tenant(member, "server", "group", "create", "--policy", "anti-affinity", GROUP)
    yield group
    tenant(member, "server", "group", "delete", group["id"], check=False, as_json=False)


@pytest.fixture(scope="module")
def server(member: Service, keypair: str, server_group: dict) -> Any:
    """`openstack server create --wait` with --network default, a key pair and the anti-affinity group."""
    created = tenant(member, "server", "create", "--flavor", "api.nano", "--image", "tiny", "--network", "default",
                     "--key-name", KEY, "--hint", f"group={server_group['id']}", "--wait", SERVER, timeout=900)
    yield created
    tenant(member, "server", "delete", "--wait", created["id"], check=False, as_json=False, timeout=900)


@pytest.fixture(scope="module")
def placed(member: Service, server: dict) -> dict:
    """The server as the admin sees it (host, libvirt domain name)."""
    return osc(member, "server", "show", server["id"])


# -- identity, catalog, flavors, images -------------------------------------------------------------


def test_token_issue(compute_service: Service) -> None:
    token = osc(compute_service, "token", "issue")
    assert set(token) >= {"id", "expires", "project_id", "user_id"}, token
    expires = datetime.strptime(token["expires"], "%Y-%m-%dT%H:%M:%S%z")  # as OSC prints it
    assert expires > datetime.now(UTC)
    # a real token: Keystone's validate answers for it with the same project and user
    with compute_service.http(token["id"]) as http:
        r = http.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": token["id"]})
    assert r.status_code == 200, r.text
    body = r.json()["token"]
    assert body["project"]["id"] == token["project_id"] and body["project"]["name"] == "admin"
    assert body["user"]["id"] == token["user_id"] and body["user"]["name"] == "admin"


def test_catalog_list(compute_service: Service) -> None:
    catalog = {entry["Type"]: entry for entry in osc(compute_service, "catalog", "list")}
    assert {"identity", "compute", "image", "network"} <= set(catalog), catalog
    endpoints = json.dumps(catalog["compute"]["Endpoints"])
    assert f"{compute_service.url}/compute/v2.1" in endpoints, endpoints
    for kind in ("identity", "image", "network"):
        assert compute_service.url in json.dumps(catalog[kind]["Endpoints"]), catalog[kind]
    for interface in ("public", "internal", "admin"):
        assert interface in endpoints, endpoints
    assert "RegionOne" in endpoints


def test_flavor_list(member: Service) -> None:
    flavors = {f["Name"]: f for f in tenant(member, "flavor", "list")}
    nano = flavors["api.nano"]
    assert (nano["RAM"], nano["VCPUs"], nano["Disk"]) == (128, 1, 1), nano
    assert flavors["api.micro"]["RAM"] == 192


def test_image_create_file_and_list(member: Service, uploaded_image: dict) -> None:
    data = TINY_IMAGE.read_bytes()
    assert uploaded_image["status"] == "active", uploaded_image
    assert uploaded_image["disk_format"] == "qcow2" and uploaded_image["container_format"] == "bare"
    assert int(uploaded_image["size"]) == len(data)
    assert uploaded_image["checksum"] == hashlib.md5(data).hexdigest()  # Glance's checksum is md5
    shown = tenant(member, "image", "show", uploaded_image["id"])
    fields = {**(shown.get("properties") or {}), **shown}  # OSC files os_hash_* under properties
    assert fields["os_hash_algo"] == "sha512" and fields["os_hash_value"] == hashlib.sha512(data).hexdigest()
    names = {i["Name"]: i for i in tenant(member, "image", "list")}
    assert names[IMAGE]["Status"] == "active"
    assert names["tiny"]["Status"] == "active"  # registered with `kvmfleet image register`: one catalogue


# -- key pairs, server groups, the server ----------------------------------------------------------


def test_keypair_create(member: Service, keypair: str) -> None:
    assert "PRIVATE KEY-----" in keypair  # printed once, to the user who created it
    listed = {k["Name"]: k for k in tenant(member, "keypair", "list")}
    assert KEY in listed and listed[KEY]["Fingerprint"], listed
    shown = tenant(member, "keypair", "show", KEY)
    assert shown["name"] == KEY and shown["fingerprint"] == listed[KEY]["Fingerprint"]
    assert "PRIVATE" not in json.dumps(shown)
    assert KEY not in {k["Name"] for k in osc(member, "keypair", "list")}  # per user: not the admin's


def test_server_group_create(member: Service, server_group: dict) -> None:
    assert server_group["name"] == GROUP
    policy = server_group.get("policy") or server_group.get("policies")
    assert "anti-affinity" in json.dumps(policy), server_group
    assert GROUP in {g["Name"] for g in tenant(member, "server", "group", "list")}


def test_server_create_wait(member: Service, server: dict, placed: dict, hosts: list[LabHost]) -> None:
    assert server["status"] == "ACTIVE", server
    assert server["name"] == SERVER and server["key_name"] == KEY
    assert flavor_name(server["flavor"]) == "api.nano"
    assert server.get("OS-EXT-SRV-ATTR:host") is None  # host attributes are for admins (OSC shows the key empty)
    host = host_of(hosts, placed["OS-EXT-SRV-ATTR:host"])
    assert domstate(host, placed["OS-EXT-SRV-ATTR:instance_name"]) == "running"


def test_server_list(member: Service, server: dict) -> None:
    rows = {s["ID"]: s for s in tenant(member, "server", "list")}
    row = rows[server["id"]]
    assert row["Name"] == SERVER and row["Status"] == "ACTIVE"
    assert row["Image"] == "tiny" and row["Flavor"] == "api.nano"
    assert "default" in json.dumps(row["Networks"]), row


def test_server_show_addresses_match_the_guest(member: Service, server: dict) -> None:
    """The address `server show` gives is the one the guest got by DHCP (its ready line says which)."""
    ready = wait_ready_line(member, SERVER)
    assert ready.group(3) == server["id"]
    deadline = time.monotonic() + 180
    shown = tenant(member, "server", "show", SERVER)
    while not shown["addresses"].get("default") and time.monotonic() < deadline:  # leases are read a bit later
        time.sleep(5)
        shown = tenant(member, "server", "show", SERVER)
    assert shown["addresses"] == {"default": [ready.group(2)]}, (shown["addresses"], ready.group(0))
    assert shown["OS-EXT-STS:vm_state"] == "active" and power_state(shown) == "Running"
    assert shown["OS-EXT-STS:task_state"] is None
    assert shown["image"].startswith("tiny (")
    assert shown["hostId"] and shown["user_id"] and shown["project_id"]
    group = tenant(member, "server", "group", "show", GROUP)
    assert server["id"] in json.dumps(group["members"]), group


def test_console_log_show(member: Service, server: dict) -> None:
    log = tenant(member, "console", "log", "show", "--lines", "50", SERVER, as_json=False).stdout
    assert "kvmfleet-guest: ready" in log, log[-2000:]


# -- power actions (checked against the host) ------------------------------------------------------


def test_server_stop_start(member: Service, server: dict, placed: dict, hosts: list[LabHost]) -> None:
    host, domain = host_of(hosts, placed["OS-EXT-SRV-ATTR:host"]), placed["OS-EXT-SRV-ATTR:instance_name"]
    tenant(member, "server", "stop", SERVER, as_json=False)
    shown = wait_status(member, server["id"], "SHUTOFF")
    assert power_state(shown) == "Shutdown"
    assert domstate(host, domain) == "shut off"
    tenant(member, "server", "start", SERVER, as_json=False)
    wait_status(member, server["id"], "ACTIVE")
    assert domstate(host, domain) == "running"


def test_server_reboot_soft_and_hard(member: Service, placed: dict, hosts: list[LabHost]) -> None:
    tenant(member, "server", "reboot", "--wait", SERVER, as_json=False, timeout=900)
    tenant(member, "server", "reboot", "--hard", "--wait", SERVER, as_json=False, timeout=900)
    assert tenant(member, "server", "show", SERVER)["status"] == "ACTIVE"
    host = host_of(hosts, placed["OS-EXT-SRV-ATTR:host"])
    assert domstate(host, placed["OS-EXT-SRV-ATTR:instance_name"]) == "running"


def test_server_pause_unpause(member: Service, server: dict, placed: dict, hosts: list[LabHost]) -> None:
    host, domain = host_of(hosts, placed["OS-EXT-SRV-ATTR:host"]), placed["OS-EXT-SRV-ATTR:instance_name"]
    tenant(member, "server", "pause", SERVER, as_json=False)
    shown = wait_status(member, server["id"], "PAUSED")
    assert power_state(shown) == "Paused"
    assert domstate(host, domain) == "paused"
    tenant(member, "server", "unpause", SERVER, as_json=False)
    wait_status(member, server["id"], "ACTIVE")
    assert domstate(host, domain) == "running"


def test_server_suspend_resume(member: Service, server: dict, placed: dict, hosts: list[LabHost]) -> None:
    host, domain = host_of(hosts, placed["OS-EXT-SRV-ATTR:host"]), placed["OS-EXT-SRV-ATTR:instance_name"]
    tenant(member, "server", "suspend", SERVER, as_json=False)
    wait_status(member, server["id"], "SUSPENDED")
    assert domstate(host, domain) != "running"
    tenant(member, "server", "resume", SERVER, as_json=False)
    wait_status(member, server["id"], "ACTIVE")
    assert domstate(host, domain) == "running"


# -- resize, rebuild -------------------------------------------------------------------------------


def max_memory_kib(host: LabHost, domain: str) -> int:
    found = re.search(r"Max memory:\s+(\d+) KiB", host.run(f"virsh dominfo {domain}"))
    assert found, f"no Max memory in virsh dominfo {domain}"
    return int(found.group(1))


def test_server_resize_confirm(member: Service, server: dict, hosts: list[LabHost]) -> None:
    tenant(member, "server", "resize", "--flavor", "api.micro", "--wait", SERVER, as_json=False, timeout=900)
    shown = wait_status(member, server["id"], "VERIFY_RESIZE")
    assert flavor_name(shown["flavor"]) == "api.micro"
    tenant(member, "server", "resize", "--confirm", SERVER, as_json=False)
    shown = wait_status(member, server["id"], "ACTIVE")
    assert flavor_name(shown["flavor"]) == "api.micro"
    host, domain = host_of(hosts, shown["OS-EXT-SRV-ATTR:host"]), shown["OS-EXT-SRV-ATTR:instance_name"]
    assert domstate(host, domain) == "running"
    assert max_memory_kib(host, domain) == 192 * 1024  # api.micro, on the host


def test_server_resize_revert(member: Service, server: dict, hosts: list[LabHost]) -> None:
    tenant(member, "server", "resize", "--flavor", "api.nano", "--wait", SERVER, as_json=False, timeout=900)
    shown = wait_status(member, server["id"], "VERIFY_RESIZE")
    assert flavor_name(shown["flavor"]) == "api.nano"
    tenant(member, "server", "resize", "--revert", SERVER, as_json=False)
    shown = wait_status(member, server["id"], "ACTIVE")
    assert flavor_name(shown["flavor"]) == "api.micro"
    host, domain = host_of(hosts, shown["OS-EXT-SRV-ATTR:host"]), shown["OS-EXT-SRV-ATTR:instance_name"]
    assert domstate(host, domain) == "running"
    assert max_memory_kib(host, domain) == 192 * 1024
    for other in hosts:  # the reverted copy is gone everywhere else
        if other is not host:
            assert domain not in other.domains(), other.name


# -- live and cold migration (admin) ---------------------------------------------------------------


def test_server_live_migration(compute_service: Service, member: Service, server: dict,
                               hosts: list[LabHost]) -> None:
    before = wait_status(member, server["id"], "ACTIVE")
    source, domain = before["OS-EXT-SRV-ATTR:host"], before["OS-EXT-SRV-ATTR:instance_name"]
    compute_service.openstack("--os-compute-api-version", "2.79", "server", "migrate", "--live-migration",
                              "--wait", server["id"], timeout=900)
    shown = wait_status(member, server["id"], "ACTIVE")
    dest = shown["OS-EXT-SRV-ATTR:host"]
    assert dest != source, shown
    assert domstate(host_of(hosts, dest), domain) == "running"
    for other in hosts:
        if other.name != dest:
            assert domain not in other.domains(), other.name
    # `server migration list` reads the admin's GET /os-migrations, filtered by server and type.
    rows = osc(compute_service, "--os-compute-api-version", "2.79", "server", "migration", "list", "--server",
               server["id"], "--type", "live-migration")
    assert [(r["Source Compute"], r["Dest Compute"], r["Status"]) for r in rows] == [(source, dest, "completed")], rows
    # A member may not migrate (admin only, as Nova's policy).
    proc = tenant(member, "server", "migrate", "--live-migration", SERVER, as_json=False, check=False)
    assert proc.returncode != 0 and "403" in proc.stderr + proc.stdout, proc.stderr


def test_server_cold_migration_confirm(compute_service: Service, member: Service, server: dict,
                                       hosts: list[LabHost]) -> None:
    source = wait_status(member, server["id"], "ACTIVE")["OS-EXT-SRV-ATTR:host"]
    compute_service.openstack("--os-compute-api-version", "2.79", "server", "migrate", "--wait", server["id"],
                              timeout=900)
    shown = wait_status(member, server["id"], "VERIFY_RESIZE")
    dest = shown["OS-EXT-SRV-ATTR:host"]
    assert dest != source
    compute_service.openstack("server", "resize", "confirm", server["id"])
    shown = wait_status(member, server["id"], "ACTIVE")
    domain = shown["OS-EXT-SRV-ATTR:instance_name"]
    assert shown["OS-EXT-SRV-ATTR:host"] == dest and domstate(host_of(hosts, dest), domain) == "running"
    assert domain not in host_of(hosts, source).domains()
    rows = osc(compute_service, "--os-compute-api-version", "2.79", "server", "migration", "list", "--server",
               server["id"], "--type", "cold-migration")
    assert [r["Status"] for r in rows] == ["confirmed"], rows


def test_server_rebuild_with_the_uploaded_image(member: Service, server: dict, uploaded_image: dict) -> None:
    before = wait_ready_line(member, SERVER)
    out = tenant(member, "server", "rebuild", "--image", uploaded_image["id"], "--wait", SERVER, "-f", "json",
                 as_json=False, timeout=900).stdout
    # OSC prints "Complete" once it waited, then the rebuild's 202 body (status REBUILD, not refreshed)
    rebuilt = json.loads(out[out.index("{"):])
    assert rebuilt["id"] == server["id"] and rebuilt["status"] == "REBUILD", rebuilt
    shown = tenant(member, "server", "show", SERVER)
    assert shown["status"] == "ACTIVE", shown
    assert shown["image"] == f"{IMAGE} ({uploaded_image['id']})"
    assert wait_ready_line(member, SERVER).group(3) == before.group(3) == server["id"]


def test_server_event_list(member: Service, server: dict) -> None:
    events = tenant(member, "server", "event", "list", SERVER)
    actions = [e["Action"] for e in events]
    for action in ("create", "stop", "start", "reboot", "pause", "unpause", "suspend", "resume", "resize",
                   "confirmResize", "revertResize", "rebuild"):
        assert action in actions, actions
    assert all(e["Request ID"].startswith("req-") and e["Server ID"] == server["id"] for e in events), events
    create = next(e for e in events if e["Action"] == "create")
    detail = tenant(member, "server", "event", "show", SERVER, create["Request ID"])
    assert detail["action"] == "create" and detail["events"], detail


# -- quotas, limits, admin views -------------------------------------------------------------------


def test_quota_show(member: Service, server: dict) -> None:
    limits = {row["Resource"]: row["Limit"] for row in tenant(member, "quota", "show")}
    for key in ("instances", "cores", "ram", "key-pairs", "server-groups", "server-group-members"):
        assert isinstance(limits.get(key), int), (key, limits)
    usage = {row["Resource"]: row for row in tenant(member, "quota", "show", "--usage", "--compute")}
    assert usage["instances"]["In Use"] == 1, usage
    assert usage["cores"]["In Use"] == 1 and usage["ram"]["In Use"] == 192, usage  # api.micro after the revert


def test_limits_show_absolute(member: Service, server: dict) -> None:
    # OSC names Nova's absolute limits by openstacksdk's attributes (maxTotalInstances -> instances, ...)
    limits = {row["Name"]: row["Value"] for row in tenant(member, "limits", "show", "--absolute")}
    for name in ("instances", "total_cores", "total_ram", "instances_used", "total_cores_used", "total_ram_used",
                 "keypairs", "server_groups", "server_group_members", "server_meta"):
        assert isinstance(limits.get(name), int), (name, limits)
    assert (limits["instances_used"], limits["total_cores_used"], limits["total_ram_used"]) == (1, 1, 192), limits


def test_hypervisor_list(compute_service: Service, hosts: list[LabHost]) -> None:
    rows = {r["Hypervisor Hostname"]: r for r in osc(compute_service, "hypervisor", "list")}
    for h in hosts:
        assert rows[h.name]["State"] == "up" and rows[h.name]["Hypervisor Type"] == "QEMU", rows
    denied = tenant(compute_service, "hypervisor", "list", check=False, as_json=False)
    assert denied.returncode != 0 and "403" in denied.stderr, denied.stderr


def test_compute_service_list_and_disable(compute_service: Service, hosts: list[LabHost]) -> None:
    target = hosts[-1].name
    rows = [r for r in osc(compute_service, "compute", "service", "list") if r["Binary"] == "nova-compute"]
    assert {h.name for h in hosts} <= {r["Host"] for r in rows}, rows
    assert all(r["State"] == "up" and r["Status"] == "enabled" for r in rows if r["Host"] in {h.name for h in hosts})
    compute_service.openstack("compute", "service", "set", "--disable", "--disable-reason", "osc test", target,
                              "nova-compute")
    try:
        rows = osc(compute_service, "compute", "service", "list", "--long", "--host", target)
        row = next(r for r in rows if r["Binary"] == "nova-compute")
        assert row["Status"] == "disabled" and row["Disabled Reason"] == "osc test", row
    finally:
        compute_service.openstack("compute", "service", "set", "--enable", target, "nova-compute")
    rows = osc(compute_service, "compute", "service", "list", "--host", target)
    assert next(r for r in rows if r["Binary"] == "nova-compute")["Status"] == "enabled"


def test_aggregate_create_add_host_and_availability_zones(compute_service: Service, hosts: list[LabHost]) -> None:
    target = hosts[-1].name
    aggregate = osc(compute_service, "aggregate", "create", "--zone", ZONE, AGGREGATE)
    try:
        assert aggregate["name"] == AGGREGATE and aggregate["availability_zone"] == ZONE
        added = osc(compute_service, "aggregate", "add", "host", AGGREGATE, target)
        assert target in added["hosts"], added
        assert target in osc(compute_service, "aggregate", "show", AGGREGATE)["hosts"]
        zones = {z["Zone Name"]: z for z in osc(compute_service, "availability", "zone", "list", "--compute")}
        assert zones[ZONE]["Zone Status"] == "available", zones
    finally:
        compute_service.openstack("aggregate", "remove", "host", AGGREGATE, target, check=False)
        compute_service.openstack("aggregate", "delete", AGGREGATE, check=False)
    assert AGGREGATE not in {a["Name"] for a in osc(compute_service, "aggregate", "list")}


def test_availability_zone_list(member: Service) -> None:
    zones = {z["Zone Name"]: z for z in tenant(member, "availability", "zone", "list")}
    assert zones["nova"]["Zone Status"] == "available", zones
    assert ZONE not in zones  # the aggregate's zone went with it


# -- delete ----------------------------------------------------------------------------------------


def test_server_delete_wait(member: Service, server: dict, hosts: list[LabHost]) -> None:
    shown = osc(member, "server", "show", server["id"])  # as admin: the host and the domain name
    host, domain = host_of(hosts, shown["OS-EXT-SRV-ATTR:host"]), shown["OS-EXT-SRV-ATTR:instance_name"]
    tenant(member, "server", "delete", "--wait", SERVER, as_json=False, timeout=900)
    gone = tenant(member, "server", "show", server["id"], check=False, as_json=False)
    assert gone.returncode != 0 and "No Server found" in gone.stderr + gone.stdout, gone
    assert domain not in host.domains()
    assert SERVER not in {s["Name"] for s in tenant(member, "server", "list")}
    limits = {row["Name"]: row["Value"] for row in tenant(member, "limits", "show", "--absolute")}
    assert (limits["instances_used"], limits["total_cores_used"], limits["total_ram_used"]) == (0, 0, 0), limits


def test_unknown_server_is_a_clean_error(member: Service) -> None:
    with pytest.raises(CommandError) as err:
        tenant(member, "server", "show", f"no-such-{SUFFIX}", as_json=False)
    assert "No Server found" in str(err.value)
