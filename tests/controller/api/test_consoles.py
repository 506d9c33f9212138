"""Remote consoles against a real `kvmfleet serve` on the lab: real guests, real ssh, a real browser.

- VNC: the URL `openstack console url show --novnc` gives, opened in headless Chromium (Debian's, driven
  by playwright from PyPI): noVNC says it is connected and the canvas shows the guest's screen.
- serial: the URL of `openstack console url show --serial`, through a websocket: the guest's shell
  answers a command; `kvmfleet server console` does the same in a terminal (Ctrl-] leaves).
- tokens: refused when reused, expired (a service with a 3 s ttl), or for another server or protocol.
- faults: another project's server 404, a stopped server 409, Nova's 400s for the body, and 404 before 2.6.
- no ssh is left behind when a console closes or the service stops.
"""

from __future__ import annotations

import json
import os
import pty
import re
import secrets
import select
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import KVMFLEET, TINY_IMAGE, Service
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
A, B = f"con-a-{SUFFIX}", f"con-b-{SUFFIX}"
CHROMIUM = "/usr/bin/chromium"
V = "2.79"


def query(svc: Service, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(svc.state / "kvmfleet.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def create_server(c: httpx.Client, svc: Service, name: str) -> str:
    image = query(svc, "SELECT id FROM images WHERE name = 'tiny'")[0][0]
    flavor = query(svc, "SELECT id FROM flavors WHERE name = 'api.nano'")[0][0]
    r = c.post("/compute/v2.1/servers", json={"server": {"name": name, "imageRef": image, "flavorRef": flavor,
                                                          "networks": "none"}})
    assert r.status_code == 202, r.text
    return r.json()["server"]["id"]


def wait_ready(c: httpx.Client, sid: str, timeout: float = 600) -> None:
    """ACTIVE, and the guest printed its ready line (its console shell runs from then on)."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["status"]
        if status == "ERROR":
            raise AssertionError(f"server {sid} went to ERROR")
        if status == "ACTIVE":
            r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-getConsoleOutput": {"length": 50}})
            if r.status_code == 200 and "kvmfleet-guest: ready" in r.json()["output"]:
                return
        time.sleep(2)
    raise AssertionError(f"server {sid} not ready within {timeout}s (status {status})")


def delete_servers(c: httpx.Client, sids: list[str]) -> None:
    for sid in sids:
        c.delete(f"/compute/v2.1/servers/{sid}")
    deadline = time.monotonic() + 600
    for sid in sids:
        while time.monotonic() < deadline and c.get(f"/compute/v2.1/servers/{sid}").status_code != 404:
            time.sleep(2)


def console(c: httpx.Client, sid: str, protocol: str = "serial", ctype: str | None = None,
            version: str = V) -> httpx.Response:
    body = {"remote_console": {"protocol": protocol, "type": ctype or ("novnc" if protocol == "vnc" else protocol)}}
    return c.post(f"/compute/v2.1/servers/{sid}/remote-consoles", json=body,
                  headers={"OpenStack-API-Version": f"compute {version}"})


def console_url(c: httpx.Client, sid: str, protocol: str = "serial") -> str:
    r = console(c, sid, protocol)
    assert r.status_code == 200, r.text
    return r.json()["remote_console"]["url"]


def vnc_ws_url(page_url: str) -> str:
    """The websocket noVNC's page opens (its `path` query variable, on the page's host)."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(page_url)
    return f"ws://{parts.netloc}/{parse_qs(parts.query)['path'][0]}"


def refused(url: str, subprotocols: list[str] | None = None) -> str:
    """The handshake is answered with an HTTP 4xx (no upgrade); its reason."""
    with pytest.raises(InvalidStatus) as info, connect(url, subprotocols=subprotocols, open_timeout=30):
        pass
    response = info.value.response
    assert 400 <= response.status_code < 500, response.status_code
    return json.loads(response.body or b"{}").get("error", {}).get("message", "")


def read_until(ws: Any, pattern: str, timeout: float = 60) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        seen += msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
        if re.search(pattern, seen):
            return seen
    raise AssertionError(f"{pattern!r} not seen within {timeout}s; got {seen[-2000:]!r}")


def attached(ws: Any, binary: bool = True) -> None:
    """Wait for virsh's banner, then press Enter until the guest shell's prompt shows: what arrives while
    virsh makes its terminal raw is flushed (TCSAFLUSH), as a person would press Enter again."""
    read_until(ws, r"Escape character is")
    for _attempt in range(10):
        ws.send(b"\r" if binary else "\r")
        try:
            read_until(ws, r"# ", timeout=5)
            return
        except AssertionError:
            continue
    raise AssertionError("no shell prompt on the serial console after 10 Enters")


def ssh_children(pid: int) -> list[int]:
    """ssh processes started by `pid` (the service); they run in sessions of their own."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and os.path.basename(cmd) == b"ssh":
            out.append(int(entry.name))
    return out


def wait_no_ssh(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while ssh_children(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ssh_children(pid), f"ssh left running under {pid}: {ssh_children(pid)}"


def ws_proc_pid(svc: Service) -> int:
    assert svc.proc is not None
    return svc.proc.pid


@pytest.fixture(scope="module")
def users(compute_service: Service) -> Any:
    compute_service.user(A, A, "member")
    compute_service.user(B, B, "member")
    out = {"a": compute_service.http(compute_service.token(A, project=A), V),
           "b": compute_service.http(compute_service.token(B, project=B), V)}
    yield out
    for c in out.values():
        c.close()


@pytest.fixture(scope="module")
def servers(compute_service: Service, users: dict[str, httpx.Client]) -> Any:
    """Two running servers of project A (vm1, vm2) and one of project B."""
    made = {"vm1": (users["a"], create_server(users["a"], compute_service, f"con-vm1-{SUFFIX}")),
            "vm2": (users["a"], create_server(users["a"], compute_service, f"con-vm2-{SUFFIX}")),
            "b": (users["b"], create_server(users["b"], compute_service, f"con-b-{SUFFIX}"))}
    try:
        for c, sid in made.values():
            wait_ready(c, sid)
        yield {key: sid for key, (_c, sid) in made.items()}
    finally:
        delete_servers(users["a"], [made["vm1"][1], made["vm2"][1]])
        delete_servers(users["b"], [made["b"][1]])


# -- the API's faults -------------------------------------------------------------------------------


def test_faults(compute_service: Service, users: dict[str, httpx.Client], servers: dict[str, str]) -> None:
    a, vm1 = users["a"], servers["vm1"]
    r = console(a, vm1, version="2.5")
    assert r.status_code == 404, r.text
    assert r.headers["openstack-api-version"] == "compute 2.5"
    r = console(a, vm1, "vnc", "serial")
    assert r.status_code == 400 and r.json() == {"badRequest": {"code": 400, "message": "Invalid console type serial"}}
    r = console(a, vm1, "serial", "novnc")
    assert r.status_code == 400 and "Invalid console type novnc" in r.text
    r = console(a, vm1, "spice", "spice-html5")
    assert r.status_code == 400 and "Unavailable console type spice-html5." in r.text
    # mks came with 2.8: refused by 2.6's schema, unavailable from 2.8
    r = console(a, vm1, "mks", "webmks", version="2.6")
    assert r.status_code == 400 and "is not one of" in r.text, r.text
    r = console(a, vm1, "mks", "webmks", version="2.8")
    assert r.status_code == 400 and "Unavailable console type webmks." in r.text
    for body in ({"remote_console": {"protocol": "vnc"}}, {"remote_console": {"protocol": "vnc", "type": "novnc",
                                                                               "extra": 1}},
                 {"console": {}}, {"remote_console": {"protocol": "rdp", "type": "novnc"}}):
        r = a.post(f"/compute/v2.1/servers/{vm1}/remote-consoles", json=body)
        assert r.status_code == 400, (body, r.text)
        assert "badRequest" in r.json()
    missing = "9d6b7c5e-1f4a-4e2b-8c3d-2a1b0c9d8e7f"
    r = console(a, missing)
    assert r.status_code == 404 and r.json()["itemNotFound"]["message"] == f"Instance {missing} could not be found."
    # the 2.1 actions
    r = a.post(f"/compute/v2.1/servers/{vm1}/action", json={"os-getSerialConsole": {"type": "serial"}},
               headers={"OpenStack-API-Version": "compute 2.1"})
    assert r.status_code == 200, r.text
    assert r.json()["console"]["type"] == "serial" and "/console/serial/" in r.json()["console"]["url"]
    r = a.post(f"/compute/v2.1/servers/{vm1}/action", json={"os-getVNCConsole": {"type": "spice-html5"}})
    assert r.status_code == 400
    # tokens are kept hashed: the URL's token is nowhere in the store
    url = console_url(a, vm1)
    token = url.rsplit("token=", 1)[1]
    rows = query(compute_service, "SELECT token_hash, instance_uuid, protocol FROM console_tokens")
    assert all(token not in row[0] for row in rows)
    assert any(row[1] == vm1 and row[2] == "serial" for row in rows)


def test_another_projects_server_is_404(compute_service: Service, users: dict[str, httpx.Client],
                                        servers: dict[str, str]) -> None:
    b_server = servers["b"]
    for protocol in ("vnc", "serial"):
        r = console(users["a"], b_server, protocol)
        assert r.status_code == 404, r.text
        assert r.json() == {"itemNotFound": {"code": 404, "message": f"Instance {b_server} could not be found."}}
    proc = compute_service.openstack("console", "url", "show", "--serial", b_server, cloud=A, check=False)
    assert proc.returncode != 0 and "No Server found" in proc.stderr  # its GET is the 404 already


# -- VNC in a real browser ----------------------------------------------------------------------------


def console_log(c: httpx.Client, sid: str) -> str:
    r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-getConsoleOutput": {"length": 100}})
    assert r.status_code == 200, r.text
    return r.json()["output"]


def vnc_type(page: Any, text: str) -> None:
    """Type as a person does: Shift held for the shifted characters (QEMU turns each key into the
    guest's scancode, so a bare '$' keysym would arrive as '4')."""
    for ch in text:
        if ch in '~!@#$%^&*()_+{}|:"<>?' or ch.isupper():
            page.keyboard.down("Shift")
            page.keyboard.type(ch)
            page.keyboard.up("Shift")
        elif ch == "\n":
            page.keyboard.press("Enter")
        else:
            page.keyboard.type(ch)


def test_novnc_in_chromium(compute_service: Service, users: dict[str, httpx.Client], servers: dict[str, str],
                           tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    users_a = users["a"]

    shown = compute_service.openstack("console", "url", "show", "--novnc", servers["vm1"], cloud=A, as_json=True)
    assert shown["type"] == "novnc", shown
    url = shown["url"]
    assert url.startswith(compute_service.url + "/console/novnc/vnc_lite.html?path=")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            page.goto(url)
            page.wait_for_function("document.getElementById('status').textContent.startsWith('Connected')",
                                   timeout=60000)
            # the guest's text screen: a framebuffer update has drawn non-black pixels on the canvas
            page.wait_for_function("""() => {
                const c = document.querySelector('#screen canvas');
                if (!c || !c.width || !c.height) return false;
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let lit = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 150) lit++;
                return lit > 200;
            }""", timeout=60000)
            size = page.evaluate("(() => { const c = document.querySelector('#screen canvas');"
                                 " return [c.width, c.height]; })()")
            assert size[0] >= 640 and size[1] >= 400, size  # the guest's VGA screen, not an error page
            status = page.inner_text("#status")
            assert status.startswith("Connected to "), status
            shot = tmp_path / "novnc.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 5000
            # keys typed in the browser reach the guest's screen shell: it writes to the serial log
            page.click("#screen canvas")
            vnc_type(page, "echo vnc-$((6*7))-typed > /dev/ttyS0\n")
            deadline = time.monotonic() + 60
            while "vnc-42-typed" not in console_log(users_a, servers["vm1"]):
                if time.monotonic() > deadline:
                    page.screenshot(path=str(tmp_path / "typed.png"))
                    raise AssertionError(f"what was typed in noVNC never reached the guest (see {tmp_path})")
                time.sleep(1)
            # the same URL again: the token is spent, noVNC cannot connect
            again = browser.new_page()
            again.goto(url)
            again.wait_for_function("document.getElementById('status').textContent.includes('wrong')"
                                    " || document.getElementById('status').textContent.includes('Disconnected')",
                                    timeout=60000)
            assert not again.inner_text("#status").startswith("Connected")
        finally:
            browser.close()
    assert "token already used" in refused(vnc_ws_url(url), ["binary"])
    wait_no_ssh(ws_proc_pid(compute_service))


# -- serial --------------------------------------------------------------------------------------------


def test_serial_console_takes_input(compute_service: Service, servers: dict[str, str]) -> None:
    shown = compute_service.openstack("console", "url", "show", "--serial", servers["vm1"], cloud=A, as_json=True)
    url = shown["url"]
    assert shown["type"] == "serial" and url.startswith("ws://127.0.0.1:")
    with connect(url, subprotocols=["binary"], open_timeout=30) as ws:
        assert ws.subprotocol == "binary"
        attached(ws)
        ws.send(b"echo kvm$((6*7))fleet; uname -s\r")
        seen = read_until(ws, r"kvm42fleet\s+Linux")
        assert "kvm$((6*7))fleet" in seen  # the shell echoed what was typed, then ran it
        assert len(ssh_children(ws_proc_pid(compute_service))) == 1
    wait_no_ssh(ws_proc_pid(compute_service))
    assert "token already used" in refused(url, ["binary"])


def test_serial_text_frames(compute_service: Service, users: dict[str, httpx.Client],
                            servers: dict[str, str]) -> None:
    """Without the binary subprotocol the console speaks text frames."""
    with connect(console_url(users["a"], servers["vm2"]), open_timeout=30) as ws:
        assert ws.subprotocol is None
        attached(ws, binary=False)
        ws.send("echo text-$((40+2))\r")
        assert "text-42" in read_until(ws, r"text-42")


def test_token_for_another_server_or_protocol_is_refused(users: dict[str, httpx.Client],
                                                         servers: dict[str, str]) -> None:
    a = users["a"]
    url = console_url(a, servers["vm1"])
    other = url.replace(servers["vm1"], servers["vm2"])
    assert "token is for another server" in refused(other)
    vnc = vnc_ws_url(console_url(a, servers["vm1"], "vnc"))
    assert "token is for a vnc console" in refused(vnc.replace("/console/vnc/", "/console/serial/"))
    assert "unknown token" in refused(url.rsplit("=", 1)[0] + "=" + secrets.token_urlsafe(32))
    assert "unknown token" in refused(url.rsplit("?", 1)[0])
    # refusals spend nothing: the token still opens its own server's console, once
    with connect(url, open_timeout=30) as ws:
        attached(ws, binary=False)
        ws.send("echo still-$((1+1))\r")
        read_until(ws, r"still-2")
    assert "token already used" in refused(url)


def test_stopped_server_is_409(users: dict[str, httpx.Client], servers: dict[str, str]) -> None:
    a, vm2 = users["a"], servers["vm2"]
    url = console_url(a, vm2)  # issued while it runs, spent after it stopped
    assert a.post(f"/compute/v2.1/servers/{vm2}/action", json={"os-stop": None}).status_code == 202
    deadline = time.monotonic() + 300
    while a.get(f"/compute/v2.1/servers/{vm2}").json()["server"]["status"] != "SHUTOFF":
        assert time.monotonic() < deadline
        time.sleep(2)
    for protocol in ("vnc", "serial"):
        r = console(a, vm2, protocol)
        assert r.status_code == 409, r.text
        assert r.json() == {"conflictingRequest": {"code": 409, "message": f"Instance {vm2} is not ready"}}
    # the console of a stopped domain: virsh refuses, the websocket closes with the reason
    with connect(url, open_timeout=30) as ws:
        with pytest.raises(Exception):  # noqa: B017 - ConnectionClosed of either kind
            read_until(ws, r"never", timeout=30)
        assert ws.close_code == 1011 and "console ended" in (ws.close_reason or ""), (ws.close_code, ws.close_reason)


# -- the CLI -------------------------------------------------------------------------------------------


def test_cli_server_console(compute_service: Service, servers: dict[str, str]) -> None:
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.clear()
        os.environ.update(compute_service.env)
        os.execv(str(KVMFLEET), [str(KVMFLEET), "server", "console", servers["vm1"]])
    seen = b""

    def expect(pattern: bytes, timeout: float = 60, start: int = 0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while not re.search(pattern, seen[start:]):
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} not seen; got {seen[-2000:]!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break

    try:
        expect(rb"Ctrl-\] to leave")
        expect(rb"Escape character is \^\]")
        for _attempt in range(10):  # Enter typed while virsh makes the terminal raw is flushed: again
            mark = len(seen)
            os.write(fd, b"\r")
            try:
                expect(rb"# ", timeout=5, start=mark)
                break
            except AssertionError:
                continue
        os.write(fd, b"echo cli-$((20+22))\r")
        expect(rb"cli-42")
        os.write(fd, b"\x1d")  # Ctrl-]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            try:
                if select.select([fd], [], [], 0.2)[0]:
                    seen += os.read(fd, 65536)
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"kvmfleet server console did not leave on Ctrl-]: {seen[-500:]!r}")
        assert os.waitstatus_to_exitcode(status) == 0, seen[-1000:]
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


# -- expiry and service stop, on a service with a 3 s token ttl ------------------------------------------


def test_expired_token_and_service_stop(service_factory: Any, lab_inventory: Path) -> None:
    svc = service_factory({"api": {"console_token_ttl": 3}})
    svc.cli("host", "import", "--inventory", str(lab_inventory))
    svc.cli("image", "register", "tiny", "--file", str(TINY_IMAGE))
    svc.cli("flavor", "create", "api.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
    c = svc.http(svc.token(), V)
    sid = create_server(c, svc, f"con-ttl-{SUFFIX}")
    try:
        wait_ready(c, sid)
        url = console_url(c, sid)
        time.sleep(4)
        assert "token expired" in refused(url)
        # an open console when the service stops: its ssh goes with it
        with connect(console_url(c, sid), open_timeout=30) as ws:
            attached(ws, binary=False)
            ws.send("echo alive\r")
            read_until(ws, r"alive")
            ssh = ssh_children(ws_proc_pid(svc))
            assert len(ssh) == 1
            svc.stop()
            deadline = time.monotonic() + 15
            while Path(f"/proc/{ssh[0]}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not Path(f"/proc/{ssh[0]}").exists(), "the console's ssh outlived the service"
        svc.start()
    finally:
        if svc.proc is None:
            svc.start()
        delete_servers(c, [sid])
        c.close()
