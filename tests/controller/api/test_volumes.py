"""Volumes on the lab, driven by the real `openstack` client: Cinder v3 and Nova's os-volume_attachments.

A service of its own with two volume types: `local` (a dir pool on each host) and `shared` (a dir pool
every lab host sees at the same path: a directory outside the lab hosts' private mounts, as an NFS
mount would be). Three tiny guests: A and B on the first host, C on the second. Each runs the same
user-data watcher: every 2 s it looks for the disk whose serial is the volume's, and prints on its
serial console what it sees (device, size in sectors, the first sector's text); A (the writer) writes the
marker there when the sector is empty. What the test reads is each guest's own console.

The data path: A writes, the volume is extended while attached (A sees the new size), detached (A sees
it go), attached to B on the same host (B reads the marker), moved to C on the other host (C reads it),
C is live-migrated with it attached (the volume goes along), and A reads it again on C's new host.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ADMIN_CLOUD, TINY_IMAGE, CommandError
from conftest_lab import LabHost, lab_hosts
from crash_tools import wait_until

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
PROJECT = f"vol-{SUFFIX}"
MARKER = f"kvmfleet-marker-{SUFFIX}"
SECTORS_1G, SECTORS_2G = 2 * 1024 * 1024, 4 * 1024 * 1024
LOCAL_DIR = "/var/lib/libvirt/kvmfleet/volumes"

WATCHER = """#!/bin/sh
(
state=none
while :; do
    dev=
    for d in /sys/block/vd*; do
        [ "$(cat "$d/serial" 2>/dev/null)" = "@SERIAL@" ] && dev=${d##*/}
    done
    if [ -n "$dev" ]; then
        size=$(cat /sys/block/$dev/size)
        data=$(dd if=/dev/$dev bs=512 count=1 2>/dev/null | tr -cd 'A-Za-z0-9-')
        if [ -z "$data" ] && [ "@ROLE@" = writer ]; then
            printf '%s' "@MARKER@" | dd of=/dev/$dev bs=512 count=1 conv=sync,fsync 2>/dev/null
            data=$(dd if=/dev/$dev bs=512 count=1 iflag=direct 2>/dev/null | tr -cd 'A-Za-z0-9-')
        fi
        now="dev=$dev sectors=$size data=$data"
    else
        now=gone
    fi
    if [ "$now" != "$state" ]; then
        echo "kvmfleet-volume-test: $now"
        state=$now
    fi
    sleep 2
done
) >/dev/console 2>&1 &
"""


def watcher(tmp: Path, name: str, serial: str, role: str) -> Path:
    path = tmp / f"{name}.sh"
    path.write_text(WATCHER.replace("@SERIAL@", serial).replace("@ROLE@", role).replace("@MARKER@", MARKER))
    return path


@pytest.fixture(scope="module")
def env(service_factory: Any, lab_inventory: Path, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[dict[str, Any]]:
    hosts = lab_hosts(lab_inventory)
    shared_dir = f"/var/lib/kvmfleet-lab/{lab_inventory.parent.name}/shared-volumes-{SUFFIX}"
    svc = service_factory({"volume": {"types": {
        "local": {"pool": "kvmfleet-volumes"},
        "shared": {"pool": f"kvmfleet-shared-{SUFFIX}", "path": shared_dir, "shared": True}}}})
    svc.cli("host", "import", "--inventory", str(lab_inventory))
    svc.cli("image", "register", "tiny", "--file", str(TINY_IMAGE))
    svc.cli("flavor", "create", "vol.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
    svc.user(f"vol-user-{SUFFIX}", PROJECT)
    svc.user(f"vol-other-{SUFFIX}", f"vol-other-{SUFFIX}")
    yield {"svc": svc, "hosts": hosts, "cloud": f"vol-user-{SUFFIX}", "other": f"vol-other-{SUFFIX}",
           "tmp": tmp_path_factory.mktemp("volumes"), "shared_dir": shared_dir}
    # leave nothing on the lab: servers, then volumes
    for server in svc.openstack("server", "list", "--all-projects", as_json=True, check=False) or []:
        svc.openstack("server", "delete", "--wait", server["ID"], check=False)
    for vol in svc.openstack("volume", "list", "--all-projects", as_json=True, check=False) or []:
        svc.openstack("volume", "delete", vol["ID"], check=False)


def os_(env: dict[str, Any], *args: str, **kw: Any) -> Any:
    return env["svc"].openstack(*args, cloud=kw.pop("cloud", env["cloud"]), **kw)


def volume(env: dict[str, Any], key: str, cloud: str | None = None) -> dict[str, Any]:
    return os_(env, "volume", "show", key, as_json=True, cloud=cloud or env["cloud"])


def wait_status(env: dict[str, Any], key: str, status: str, timeout: float = 180) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        vol = volume(env, key)
        assert not vol["status"].startswith("error"), vol
        return vol if vol["status"] == status else None

    return wait_until(f"volume {key} {status}", check, timeout, interval=1)


def console(env: dict[str, Any], server: str) -> str:
    return env["svc"].openstack("console", "log", "show", server, cloud=env["cloud"]).stdout


def seen(env: dict[str, Any], server: str, line: str, timeout: float = 120) -> str:
    """Wait until the guest's console shows `line` as its latest volume-test line."""
    def check() -> str | None:
        lines = [x.strip() for x in console(env, server).splitlines() if "kvmfleet-volume-test:" in x]
        last = lines[-1].split("kvmfleet-volume-test:", 1)[1].strip() if lines else ""
        return last if line in last else None

    return wait_until(f"{server} console: {line}", check, timeout, interval=2)


def on_host(env: dict[str, Any], name: str) -> LabHost:
    return next(h for h in env["hosts"] if h.name == name)


def file_on(host: LabHost, path: str) -> bool:
    return host.run(f"test -e {path} && echo yes || echo no").strip() == "yes"


def make_server(env: dict[str, Any], name: str, host: str, script: Path) -> str:
    """A tiny guest of the test's project on `host` (the other hosts are disabled while it is built)."""
    svc = env["svc"]
    others = [h.name for h in env["hosts"] if h.name != host]
    for other in others:
        svc.cli("host", "disable", other, "--reason", "volume test: build elsewhere")
    try:
        out = os_(env, "server", "create", "--flavor", "vol.nano", "--image", "tiny", "--user-data", str(script),
                  "--network", "default", name, "--wait", as_json=True)
    finally:
        for other in others:
            svc.cli("host", "enable", other)
    assert out["status"] == "ACTIVE", out
    assert svc.openstack("server", "show", out["id"], as_json=True)["OS-EXT-SRV-ATTR:host"] == host, out
    return out["id"]


def test_volume_types_and_bad_input(env: dict[str, Any]) -> None:
    types = {t["Name"] for t in os_(env, "volume", "type", "list", as_json=True)}
    assert types == {"local", "shared"}, types
    before = os_(env, "volume", "list", as_json=True)
    for args, needle in ((["--size", "0"], "size"), (["--size", "1", "--type", "nosuch"], "nosuch"),
                         (["--size", "99999"], "size")):
        proc = os_(env, "volume", "create", *args, f"bad-{SUFFIX}", check=False)
        assert proc.returncode != 0, proc.stdout
        assert needle in proc.stderr, proc.stderr
    # a name with XML and shell text is only a display name: it never reaches a host
    odd = os_(env, "volume", "create", "--size", "1", f"<x>$(reboot);'{SUFFIX}", as_json=True)
    assert wait_status(env, odd["id"], "available")["name"] == f"<x>$(reboot);'{SUFFIX}"
    os_(env, "volume", "delete", odd["id"])
    wait_until("odd volume gone", lambda: odd["id"] not in {v["ID"] for v in os_(env, "volume", "list", as_json=True)},
               60, 1)
    assert os_(env, "volume", "list", as_json=True) == before


def test_gigabytes_quota_refused_with_nothing_made(env: dict[str, Any]) -> None:
    svc = env["svc"]
    project_id = svc.openstack("project", "show", PROJECT, as_json=True)["id"]
    svc.openstack("quota", "set", "--gigabytes", "3", project_id)
    try:
        first = os_(env, "volume", "create", "--size", "2", f"q1-{SUFFIX}", as_json=True)
        wait_status(env, first["id"], "available")
        before = os_(env, "volume", "list", as_json=True)
        proc = os_(env, "volume", "create", "--size", "2", f"q2-{SUFFIX}", check=False)
        assert proc.returncode != 0
        assert "413" in proc.stderr and "gigabytes" in proc.stderr, proc.stderr
        assert os_(env, "volume", "list", as_json=True) == before  # nothing made
        limits = os_(env, "limits", "show", "--absolute", as_json=True)
        used = {row["Name"]: row["Value"] for row in limits}
        assert used["total_gigabytes_used"] == 2 and used["max_total_volume_gigabytes"] == 3, used
        # another project's volume is a 404
        other = os_(env, "volume", "show", first["id"], cloud=env["other"], check=False)
        assert other.returncode != 0 and "No Volume found" in other.stderr, other.stderr
        os_(env, "volume", "delete", first["id"])
    finally:
        svc.openstack("quota", "set", "--gigabytes", "1000", project_id)


def test_data_survives_detach_attach_move_and_live_migration(env: dict[str, Any]) -> None:
    h1, h2 = env["hosts"][0].name, env["hosts"][1].name
    vol = os_(env, "volume", "create", "--size", "1", f"data-{SUFFIX}", as_json=True)
    vid = vol["id"]
    serial = vid[:20]
    wait_status(env, vid, "available")
    a = make_server(env, f"vol-a-{SUFFIX}", h1, watcher(env["tmp"], "a", serial, "writer"))
    b = make_server(env, f"vol-b-{SUFFIX}", h1, watcher(env["tmp"], "b", serial, "reader"))
    c = make_server(env, f"vol-c-{SUFFIX}", h2, watcher(env["tmp"], "c", serial, "reader"))

    # A writes the marker on the hot-plugged disk
    os_(env, "server", "add", "volume", a, vid)
    attached = wait_status(env, vid, "in-use")
    assert attached["attachments"][0]["server_id"] == a, attached
    assert volume(env, vid, cloud=ADMIN_CLOUD)["os-vol-host-attr:host"].startswith(f"{h1}@local"), "not on A's host"
    seen(env, a, f"sectors={SECTORS_1G} data={MARKER}")
    listed = os_(env, "server", "show", a, as_json=True)["volumes_attached"]
    assert [v["id"] for v in listed] == [vid], listed

    # extended while attached: the guest sees the new size at once
    os_(env, "volume", "set", "--size", "2", vid)
    assert wait_status(env, vid, "in-use")["size"] == 2
    seen(env, a, f"sectors={SECTORS_2G} data={MARKER}")

    # never deleted while attached
    proc = os_(env, "volume", "delete", vid, check=False)
    assert proc.returncode != 0 and "attached" in proc.stderr, proc.stderr
    assert volume(env, vid)["status"] == "in-use"

    # detached: A sees it go; attached to B on the same host: B reads the marker
    os_(env, "server", "remove", "volume", a, vid)
    wait_status(env, vid, "available")
    seen(env, a, "gone")
    os_(env, "server", "add", "volume", b, vid)
    wait_status(env, vid, "in-use")
    seen(env, b, f"sectors={SECTORS_2G} data={MARKER}")

    # to C on the other host: the detached local volume moves there first
    os_(env, "server", "remove", "volume", b, vid)
    wait_status(env, vid, "available")
    os_(env, "server", "add", "volume", c, vid)
    wait_status(env, vid, "in-use")
    seen(env, c, f"data={MARKER}")
    assert volume(env, vid, cloud=ADMIN_CLOUD)["os-vol-host-attr:host"].startswith(f"{h2}@local")
    path = f"{LOCAL_DIR}/volume-{vid}"
    assert file_on(on_host(env, h2), path) and not file_on(on_host(env, h1), path), "the move left a copy behind"

    # C live-migrates to the first host with the volume attached: the volume goes along
    env["svc"].openstack("server", "migrate", "--live-migration", "--host", h1, "--wait", c)
    assert env["svc"].openstack("server", "show", c, as_json=True)["OS-EXT-SRV-ATTR:host"] == h1
    assert volume(env, vid, cloud=ADMIN_CLOUD)["os-vol-host-attr:host"].startswith(f"{h1}@local")
    assert file_on(on_host(env, h1), path) and not file_on(on_host(env, h2), path), "the migration left a copy"
    os_(env, "server", "remove", "volume", c, vid)
    wait_status(env, vid, "available")
    os_(env, "server", "add", "volume", a, vid)
    wait_status(env, vid, "in-use")
    seen(env, a, f"sectors={SECTORS_2G} data={MARKER}")

    # deleting the server detaches its volume, which stays with its data
    env["svc"].openstack("server", "delete", "--wait", a)
    after = wait_status(env, vid, "available")
    assert after["attachments"] == [], after
    assert file_on(on_host(env, h1), path)
    os_(env, "volume", "delete", vid)
    wait_until("volume deleted", lambda: vid not in {v["ID"] for v in os_(env, "volume", "list", as_json=True)},
               60, 1)
    assert not file_on(on_host(env, h1), path), "the deleted volume's file stayed"
    for server in (b, c):
        env["svc"].openstack("server", "delete", "--wait", server)


def test_shared_volume_attaches_on_any_host_without_moving(env: dict[str, Any]) -> None:
    h1, h2 = env["hosts"][0].name, env["hosts"][1].name
    vol = os_(env, "volume", "create", "--size", "1", "--type", "shared", f"shared-{SUFFIX}", as_json=True)
    vid = vol["id"]
    wait_status(env, vid, "available")
    assert volume(env, vid, cloud=ADMIN_CLOUD)["os-vol-host-attr:host"].startswith("shared@shared")
    serial = vid[:20]
    w = make_server(env, f"vol-w-{SUFFIX}", h1, watcher(env["tmp"], "w", serial, "writer"))
    r = make_server(env, f"vol-r-{SUFFIX}", h2, watcher(env["tmp"], "r", serial, "reader"))
    os_(env, "server", "add", "volume", w, vid)
    wait_status(env, vid, "in-use")
    seen(env, w, f"data={MARKER}")
    os_(env, "server", "remove", "volume", w, vid)
    wait_status(env, vid, "available")
    started = time.monotonic()
    os_(env, "server", "add", "volume", r, vid)
    wait_status(env, vid, "in-use")
    seen(env, r, f"data={MARKER}")
    assert file_on(env["hosts"][0], f"{env['shared_dir']}/volume-{vid}"), "the shared file is not where declared"
    os_(env, "server", "remove", "volume", r, vid)
    wait_status(env, vid, "available")
    os_(env, "volume", "delete", vid)
    for server in (w, r):
        env["svc"].openstack("server", "delete", "--wait", server)
    assert time.monotonic() - started < 600


def test_volume_api_faults_and_microversions(env: dict[str, Any]) -> None:
    svc = env["svc"]
    token = svc.token(env["cloud"], project=PROJECT)
    with httpx.Client(base_url=svc.url, headers={"X-Auth-Token": token}, timeout=30) as c:
        r = c.get("/volume/")
        assert r.status_code == 300 and r.json()["versions"][0]["id"] == "v3.0", r.text
        r = c.get("/volume/v3/volumes", headers={"OpenStack-API-Version": "volume 3.71"})
        assert r.status_code == 406, r.text
        r = c.get("/volume/v3/volumes", headers={"OpenStack-API-Version": "volume 3.60"})
        assert r.status_code == 200 and r.headers["openstack-api-version"] == "volume 3.60", r.headers
        r = c.get("/volume/v3/volumes/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12)
        assert r.status_code == 404 and "itemNotFound" in r.json(), r.text
        r = c.post("/volume/v3/volumes", json={"volume": {"size": 1, "bogus": 1}})
        assert r.status_code == 400 and "badRequest" in r.json(), r.text
        r = c.post("/volume/v3/volumes", json={"volume": {"size": 1, "snapshot_id": "x"}})
        assert r.status_code == 400, r.text
        project_id = svc.openstack("project", "show", PROJECT, as_json=True)["id"]
        other_id = svc.openstack("project", "show", env["other"], as_json=True)["id"]
        assert c.get(f"/volume/v3/{project_id}/volumes").status_code == 200
        assert c.get(f"/volume/v3/{other_id}/volumes").status_code == 404
        catalog = {s["type"] for s in httpx.get(f"{svc.url}/identity/v3/auth/catalog",
                                                headers={"X-Auth-Token": token}).json()["catalog"]}
        assert {"block-storage", "volumev3"} <= catalog, catalog
    with pytest.raises(CommandError):
        os_(env, "server", "add", "volume", "no-such-server", "no-such-volume")


def test_boot_from_volume_survives_server_delete(env: dict[str, Any]) -> None:
    """`openstack server create --boot-from-volume`: the root disk is a volume made from the image on the
    server's host; deleting the server (delete_on_termination false) leaves the volume, its file and its
    data; with delete_on_termination true the volume goes with the server."""
    svc = env["svc"]
    before = {v["ID"] for v in os_(env, "volume", "list", as_json=True)}
    out = os_(env, "server", "create", "--flavor", "vol.nano", "--image", "tiny", "--boot-from-volume", "1",
              "--network", "default", f"bfv-{SUFFIX}", "--wait", as_json=True)
    assert out["status"] == "ACTIVE", out
    sid = out["id"]
    wait_until("guest booted from its volume", lambda: "kvmfleet-guest: ready" in console(env, sid), 120, 2)
    shown = svc.openstack("server", "show", sid, as_json=True)
    assert "booted from volume" in str(shown["image"]).lower(), shown["image"]
    [root] = shown["volumes_attached"]
    vol = volume(env, root["id"])
    assert vol["status"] == "in-use" and vol["bootable"] in (True, "true"), vol
    assert vol["attachments"][0]["device"] == "/dev/vda", vol["attachments"]
    host = on_host(env, shown["OS-EXT-SRV-ATTR:host"])
    path = f"{LOCAL_DIR}/volume-{root['id']}"
    assert file_on(host, path)
    # the domain's own root overlay is not there: it boots from the volume
    assert not file_on(host, f"/var/lib/libvirt/kvmfleet/instances/kvmfleet-{sid}/disk")
    svc.openstack("server", "delete", "--wait", sid)
    after = wait_status(env, root["id"], "available")
    assert after["attachments"] == [] and file_on(host, path), after
    os_(env, "volume", "delete", root["id"])
    wait_until("root volume deleted", lambda: not file_on(host, path), 60, 1)

    image_id = svc.openstack("image", "show", "tiny", as_json=True)["id"]
    out = os_(env, "server", "create", "--flavor", "vol.nano", "--network", "default", "--block-device",
              f"source_type=image,uuid={image_id},destination_type=volume,volume_size=1,"
              "delete_on_termination=true,boot_index=0", f"bfv-dot-{SUFFIX}", "--wait", as_json=True)
    assert out["status"] == "ACTIVE", out
    [root] = svc.openstack("server", "show", out["id"], as_json=True)["volumes_attached"]
    assert root["delete_on_termination"] is True, root
    svc.openstack("server", "delete", "--wait", out["id"])
    wait_until("delete_on_termination volume gone",
               lambda: {v["ID"] for v in os_(env, "volume", "list", as_json=True)} == before, 120, 2)
