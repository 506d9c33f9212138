"""Schemathesis over the servers API with a REAL server behind {server_id} (the shared fuzz run has no host,
so it only reaches the 404s): every generated request to a server's routes, valid or not, gets an answer
below 500, and the service still works afterwards.

The fuzzer is a member of a project of its own whose instance quota is used up by that server, so a
generated create that passes validation ends in 403 (over quota) instead of building servers on the lab;
DELETE /servers/{id} is left out (it would remove the server the other routes need); both are covered
request by request in test_bad_input_servers.py and test_servers_api.py.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import BIN, Service

pytestmark = pytest.mark.lab

MAX_EXAMPLES = 8
MAX_SECONDS = 900
SUFFIX = secrets.token_hex(3)


def test_servers_routes_never_answer_5xx(compute_service: Service, tmp_path: Path) -> None:
    db = sqlite3.connect(compute_service.state / "kvmfleet.db")
    image = db.execute("SELECT id FROM images WHERE name = 'tiny'").fetchone()[0]
    flavor = db.execute("SELECT id FROM flavors WHERE name = 'api.nano'").fetchone()[0]
    db.close()
    member = f"fuzz-{SUFFIX}"
    compute_service.user(member, member, "member")
    token = compute_service.token(member, project=member)
    with compute_service.http(token, "2.79") as client:
        r = client.post("/compute/v2.1/servers", json={"server": {"name": f"fuzz-vm-{SUFFIX}", "imageRef": image,
                                                                  "flavorRef": flavor, "networks": "auto",
                                                                  "metadata": {"k": "v"}}})
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]
        deadline = time.monotonic() + 600
        while client.get(f"/compute/v2.1/servers/{sid}").json()["server"]["status"] == "BUILD":
            assert time.monotonic() < deadline
            time.sleep(2)
        request_id = client.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()[
            "instanceActions"][0]["request_id"]
    compute_service.cli("quota", "set", member, "--instances", "1")
    config = tmp_path / "schemathesis.toml"
    config.write_text("[parameters]\n" + "".join(f'"path.{k}" = {json.dumps(v)}\n' for k, v in {
        "server_id": sid, "key": "k", "request_id": request_id}.items()))
    junit = tmp_path / "schemathesis.xml"
    argv = [str(BIN / "schemathesis"), "--config-file", str(config), "run", f"{compute_service.url}/openapi.json",
            "--url", compute_service.url, "-H", f"X-Auth-Token: {token}",
            "-H", "OpenStack-API-Version: compute 2.79",
            "--include-path-regex", "^/compute/v2.1/servers",
            "--exclude-method", "DELETE", "--exclude-path-regex", r"^/compute/v2\.1/servers/\{server_id\}$",
            "--checks", "not_a_server_error", "--max-examples", str(MAX_EXAMPLES),
            "--phases", "examples,coverage,fuzzing", "--seed", "11", "--workers", "1",
            "--request-timeout", "120", "--suppress-health-check", "all",
            "--report", "junit", "--report-junit-path", str(junit), "--output-sanitize", "true"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=MAX_SECONDS + 300, check=False,
                              env={**compute_service.env, "NO_COLOR": "1"})
        (tmp_path / "schemathesis.out").write_text(proc.stdout + proc.stderr)
        start = proc.stdout.find("FAILURES")
        summary = (proc.stdout[start:start + 20000] if start >= 0 else "") + "\n...\n" + proc.stdout[-4000:]
        assert junit.is_file(), f"no report (rc {proc.returncode}):\n{summary}\n{proc.stderr[-3000:]}"
        report = junit.read_text()
        assert "Server error" not in report, summary
        tested = {case.get("name") for case in ET.fromstring(report).iter("testcase")}
        assert "DELETE /compute/v2.1/servers/{server_id}" not in tested, sorted(tested)  # left out, as meant
        assert {"POST /compute/v2.1/servers", "POST /compute/v2.1/servers/{server_id}/action",
                "GET /compute/v2.1/servers/detail"} <= tested, sorted(tested)
        instances = sqlite3.connect(compute_service.state / "kvmfleet.db").execute(
            "SELECT count(*) FROM instances i JOIN projects p ON p.id = i.project_id WHERE p.name = ?",
            (member,)).fetchone()[0]
        assert instances == 1  # no generated create got through
        assert proc.returncode == 0, f"schemathesis exited {proc.returncode}:\n{summary}\n{proc.stderr[-3000:]}"
        with compute_service.http(token, "2.79") as client:
            assert client.get(f"/compute/v2.1/servers/{sid}").status_code == 200
    finally:
        with compute_service.http(token, "2.79") as client:
            assert client.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
            deadline = time.monotonic() + 600
            while client.get(f"/compute/v2.1/servers/{sid}").status_code != 404 and time.monotonic() < deadline:
                time.sleep(2)
