"""Remote consoles (Nova's get_vnc_console / get_serial_console and its console auth tokens).

    token, expires = issue(store, server_id, "vnc", project_id=..., user_id=..., ttl=600)
    target = consume(store, token, server_id, "vnc")     # once: a second call raises TokenRefused
    port = vnc_port(target.host)                           # the display's port on the host's 127.0.0.1
    argv = tunnel_argv(target.host, port)                  # ssh -W 127.0.0.1:<port>: bytes to the display
    argv = serial_argv(target.host, target.domain, tty=True)   # ssh -tt ... virsh console --force

Nothing listens on a host for this: the VNC display listens on the host's 127.0.0.1 only and the
controller reaches it through the host's sshd (a direct-tcpip channel), with the same user, key and
known_hosts as the controller's Ansible runs, host key checking on. The serial console is libvirt's
(``virsh console`` on the host, over the same SSH).

A token is 32 random bytes (URL-safe base64); the store keeps its SHA-256 only, bound to one instance
and one protocol. ``consume`` marks it used in one compare-and-set UPDATE (unused, unexpired, this
instance, this protocol), so two connections racing for one token never both get it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from kvmfleet.compute.errors import ComputeError, InvalidInstanceState, InvalidRequest
from kvmfleet.store.console_models import ConsoleToken
from kvmfleet.store.models import Host, Instance, utcnow
from kvmfleet.store.states import PowerState, VmState

# protocol -> the console types it serves (Nova's handlers; spice, rdp and mks are not offered)
TYPES = {"vnc": ("novnc",), "serial": ("serial",)}
UNAVAILABLE = {"spice": "spice-html5", "mks": "webmks", "rdp": "rdp-html5"}
VIRSH = "virsh -c qemu:///system"
SSH_TIMEOUT = 20.0


class ConsoleTypeInvalid(InvalidRequest):
    """A protocol and type that do not go together (Nova's ConsoleTypeInvalid, 400)."""


class ConsoleTypeUnavailable(InvalidRequest):
    """A console type kvmfleet does not offer (Nova's ConsoleTypeUnavailable, 400)."""


class InstanceNotReady(InvalidInstanceState):
    """The server is not running, or has no display of that kind now (Nova's InstanceNotReady, 409)."""


class TokenRefused(ComputeError):
    """A console connection's token is unknown, used, expired, or for another server or protocol."""


class ConsoleUnreachable(ComputeError):
    """The host did not answer over SSH, or the domain's console could not be found there."""


@dataclass(frozen=True)
class HostConn:
    """How to reach a host over SSH: its name and the Ansible connection vars the executor uses."""

    name: str
    address: str
    vars: dict[str, Any]

    @classmethod
    def of(cls, host: Host) -> HostConn:
        from kvmfleet.compute.hosts import connection_vars

        values = connection_vars(host)
        return cls(host.name, str(values.get("ansible_host") or host.address or host.name), values)


@dataclass(frozen=True)
class Target:
    """What a consumed token opens: the instance's domain on its host."""

    instance_uuid: str
    protocol: str
    domain: str
    host: HostConn


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_type(protocol: str, console_type: str) -> None:
    if protocol in UNAVAILABLE or console_type in UNAVAILABLE.values() or console_type == "xvpvnc":
        raise ConsoleTypeUnavailable(f"Unavailable console type {console_type}.")
    if console_type not in TYPES.get(protocol, ()):
        raise ConsoleTypeInvalid(f"Invalid console type {console_type}")


def _ready(inst: Instance) -> None:
    if inst.host is None or inst.vm_state != VmState.ACTIVE or inst.power_state != PowerState.RUNNING \
            or inst.task_state is not None:
        raise InstanceNotReady(f"Instance {inst.uuid} is not ready")


def issue(store: Any, server_id: str, protocol: str, console_type: str, project_id: str | None = None,
          user_id: str | None = None, ttl: int = 600, check_display: bool = True) -> tuple[str, dt.datetime]:
    """A new one-time token for the server's console; 409 (InstanceNotReady) unless it runs, and for VNC
    unless its domain has a VNC display now (asked of the host)."""
    from kvmfleet.compute.queries import get_instance

    check_type(protocol, console_type)
    with store.transaction() as session:
        inst = get_instance(session, server_id, project_id)
        _ready(inst)
        uuid, domain = inst.uuid, inst.domain_name
        host = session.scalars(select(Host).where(Host.name == inst.host)).first()
        if host is None:
            raise InstanceNotReady(f"Instance {uuid} is not ready")
        conn = HostConn.of(host)
    if protocol == "vnc" and check_display and vnc_port(conn, domain) is None:
        raise InstanceNotReady(f"Instance {uuid} has no VNC display")
    token = secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(seconds=ttl)
    with store.transaction() as session:
        session.add(ConsoleToken(token_hash=hash_token(token), instance_uuid=uuid, protocol=protocol,
                                 console_type=console_type, user_id=user_id, expires_at=expires))
    return token, expires


def consume(store: Any, token: str, server_id: str, protocol: str) -> Target:
    """Spend `token` on a connection to `server_id`'s `protocol` console, or raise TokenRefused saying why."""
    digest = hash_token(token or "")
    now = utcnow()
    with store.transaction() as session:
        spent = session.execute(
            update(ConsoleToken).where(ConsoleToken.token_hash == digest, ConsoleToken.used_at.is_(None),
                                       ConsoleToken.expires_at > now, ConsoleToken.instance_uuid == server_id,
                                       ConsoleToken.protocol == protocol)
            .values(used_at=now).execution_options(synchronize_session=False)).rowcount
        if spent != 1:
            row = session.scalars(select(ConsoleToken).where(ConsoleToken.token_hash == digest)).first()
            if row is None:
                reason = "unknown token"
            elif row.used_at is not None:
                reason = "token already used"
            elif row.expires_at <= now:
                reason = "token expired"
            elif row.instance_uuid != server_id:
                reason = "token is for another server"
            else:
                reason = f"token is for a {row.protocol} console"
            raise TokenRefused(reason)
        inst = session.get(Instance, server_id)
        if inst is None or inst.deleted_at is not None or inst.host is None:
            raise TokenRefused("the server is gone or has no host")
        host = session.scalars(select(Host).where(Host.name == inst.host)).first()
        if host is None:
            raise TokenRefused("the server's host is gone")
        return Target(inst.uuid, protocol, inst.domain_name, HostConn.of(host))


def purge_expired(store: Any, older_than: float = 3600.0) -> int:
    """Forget tokens that expired more than `older_than` seconds ago."""
    from sqlalchemy import delete

    cutoff = utcnow() - dt.timedelta(seconds=older_than)
    with store.transaction() as session:
        return session.execute(delete(ConsoleToken).where(ConsoleToken.expires_at < cutoff)).rowcount or 0


# -- ssh ----------------------------------------------------------------------------------------------


def ssh_argv(host: HostConn, tty: bool = False) -> list[str]:
    """ssh to `host` as the executor's Ansible does (user, port, key, common and extra args). Our options
    come first, and ssh keeps the first value of an option: host key checking stays strict whatever
    the vars say, no password prompt, no shared control master left behind."""
    v = host.vars
    argv = ["ssh", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ControlMaster=no",
            "-o", "ControlPath=none", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3", "-e", "none", "-tt" if tty else "-T"]
    user = v.get("ansible_user") or v.get("ansible_ssh_user")
    if user:
        argv += ["-l", str(user)]
    port = v.get("ansible_port") or v.get("ansible_ssh_port")
    if port:
        argv += ["-p", str(port)]
    key = v.get("ansible_ssh_private_key_file") or v.get("ansible_private_key_file")
    if key:
        argv += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    for name in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        if v.get(name):
            argv += shlex.split(str(v[name]))
    return argv


def _remote(host: HostConn, command: str, tty: bool = False) -> list[str]:
    return [*ssh_argv(host, tty=tty), "--", host.address, command]


def vnc_port(host: HostConn, domain: str) -> int | None:
    """The TCP port of the domain's VNC display on the host's 127.0.0.1 (libvirt's live XML, through
    ``virsh vncdisplay``), or None when it has none (not running, no graphics, not on loopback)."""
    try:
        proc = subprocess.run(_remote(host, f"{VIRSH} vncdisplay {shlex.quote(domain)}"), capture_output=True,
                              text=True, timeout=SSH_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConsoleUnreachable(f"host {host.name} did not answer within {SSH_TIMEOUT:.0f}s") from exc
    if proc.returncode == 255:
        raise ConsoleUnreachable(f"host {host.name}: ssh: {proc.stderr.strip()[-300:]}")
    m = re.fullmatch(r"(127\.0\.0\.1|localhost)?:(\d+)", proc.stdout.strip())
    if proc.returncode != 0 or m is None:
        return None
    return 5900 + int(m.group(2))


def tunnel_argv(host: HostConn, port: int) -> list[str]:
    """ssh that carries stdin/stdout to 127.0.0.1:<port> on the host (a direct-tcpip channel)."""
    return [*ssh_argv(host), "-W", f"127.0.0.1:{int(port)}", "--", host.address]


def serial_argv(host: HostConn, domain: str, tty: bool = True) -> list[str]:
    """ssh that attaches the domain's serial console (libvirt's, taken over with --force)."""
    return _remote(host, f"{VIRSH} console --force {shlex.quote(domain)}", tty=tty)


def cli_target(store: Any, key: str, project: str | None = None) -> Target:
    """The serial console of server `key` (uuid or name, within `project` if given) for the CLI, which
    talks to the host directly."""
    from kvmfleet.compute.common import find_instance
    from kvmfleet.store import api as store_api

    with store.transaction() as session:
        inst = find_instance(session, key, store_api.get_project(session, project).id if project else None)
        _ready(inst)
        host = session.scalars(select(Host).where(Host.name == inst.host)).first()
        if host is None:
            raise InstanceNotReady(f"Instance {inst.uuid} is not ready")
        return Target(inst.uuid, "serial", inst.domain_name, HostConn.of(host))
