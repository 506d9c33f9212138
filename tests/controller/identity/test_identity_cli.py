"""The identity CLI as a user runs it: bootstrap, user, project role commands, cloud-config; and the
state dir (0700) and SQLite store (0600) permissions."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
KVMFLEET = str(BIN / "kvmfleet")


def run(state: Path, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVMFLEET_")}
    env.update({"KVMFLEET_STATE_DIR": str(state), "COLUMNS": "200"})
    proc = subprocess.run([KVMFLEET, *args], input=input, capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_dir_is_0700_and_store_0600(tmp_path):
    state = tmp_path / "deep" / "state"
    run(state, "db", "upgrade")
    assert mode(state) == 0o700 and mode(state.parent) == 0o700
    assert mode(state / "kvmfleet.db") == 0o600
    run(state, "identity", "bootstrap", "--admin-password-stdin", input="pw-one\n")
    assert all(mode(p) == 0o600 for p in state.glob("kvmfleet.db*")), [(p, oct(mode(p))) for p in state.iterdir()]
    # an older kvmfleet left them open: the next command tightens them
    state.chmod(0o755)
    (state / "kvmfleet.db").chmod(0o644)
    run(state, "project", "list")
    assert mode(state) == 0o700 and mode(state / "kvmfleet.db") == 0o600


def test_bootstrap_user_and_project_commands(tmp_path):
    state = tmp_path / "state"
    out = run(state, "identity", "bootstrap", "--admin-password-stdin", input="Admin-pw-1\n").stdout
    assert "created user admin" in out and "created role member" in out
    assert "nothing to do" in run(state, "identity", "bootstrap", "--admin-password-stdin",
                                  input="Admin-pw-1\n").stdout
    assert run(state, "identity", "bootstrap", check=False).returncode != 0  # the password only from stdin
    run(state, "project", "create", "pa")
    row = yaml.safe_load(run(state, "user", "create", "alice", "--project", "pa", "--password-stdin", "--role",
                             "member", "--role", "reader", "-f", "json", input="alice-secret\n").stdout)
    assert row["name"] == "alice" and row["default_project"] == "pa" and row["roles"] == "member@pa, reader@pa"
    dup = run(state, "user", "create", "alice", "--project", "pa", "--password-stdin", input="x\n", check=False)
    assert dup.returncode == 1 and "Duplicate entry" in dup.stderr and "alice-secret" not in dup.stderr
    bad = run(state, "user", "create", "bob", "--project", "pa", "--password-stdin", "--role", "nope",
              input="bob-secret\n", check=False)
    assert bad.returncode == 1 and "role nope not found" in bad.stderr
    names = [u["name"] for u in yaml.safe_load(run(state, "user", "list", "-f", "json").stdout)]
    assert names == ["admin", "alice"]  # bob was not half made
    run(state, "user", "create", "carol", "--password-stdin", input="carol-secret\n")
    run(state, "project", "add-user", "pa", "carol", "--role", "manager")
    users = {r["user"]: r["roles"] for r in yaml.safe_load(run(state, "project", "users", "pa", "-f", "json").stdout)}
    assert users == {"alice": "member, reader", "carol": "manager"}
    run(state, "project", "remove-user", "pa", "alice", "--role", "reader")
    run(state, "user", "set", "carol", "--password-stdin", "--disable", input="carol-new\n")
    shown = yaml.safe_load(run(state, "user", "show", "carol", "-f", "json").stdout)
    assert shown["enabled"] is False and shown["password_set"] is True
    assert "carol-new" not in (state / "kvmfleet.db").read_bytes().decode("latin-1")
    run(state, "user", "delete", "carol")
    users = {r["user"]: r["roles"] for r in yaml.safe_load(run(state, "project", "users", "pa", "-f", "json").stdout)}
    assert users == {"alice": "member"}


def test_cloud_config(tmp_path):
    state = tmp_path / "state"
    run(state, "identity", "bootstrap", "--admin-password-stdin", input="Admin-pw-1\n")
    (state / "kvmfleet.yml").write_text("api:\n  public_url: https://cloud.example:8774/\n  region: Lab\n")
    run(state, "project", "create", "pa")
    run(state, "user", "create", "alice", "--project", "pa", "--password-stdin", input="alice-secret\n")
    plain = run(state, "cloud-config", "--user", "alice", "--project", "pa").stdout
    assert "alice-secret" not in plain and "password" not in plain
    cloud = yaml.safe_load(plain)["clouds"]["kvmfleet"]
    assert cloud == {"auth": {"auth_url": "https://cloud.example:8774/identity", "username": "alice",
                              "project_name": "pa", "user_domain_name": "Default", "project_domain_name": "Default"},
                     "region_name": "Lab", "interface": "public", "identity_api_version": 3}
    named = yaml.safe_load(run(state, "cloud-config", "--user", "alice", "--project", "pa", "--name", "mine",
                               "--with-password-stdin", input="alice-secret\n").stdout)
    assert named["clouds"]["mine"]["auth"]["password"] == "alice-secret"
    missing = run(state, "cloud-config", "--user", "nobody", "--project", "pa", check=False)
    assert missing.returncode == 1 and "nobody" in missing.stderr
