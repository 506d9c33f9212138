"""The console proxy of `kvmfleet serve`: same process, same port as the API (Nova's novncproxy and
serialproxy, folded in).

    GET  /console/novnc/...                noVNC's static client (Debian's novnc, api.novnc_dir)
    WS   /console/vnc/{server_id}?token=T  RFB bytes to and from the server's VNC display (binary frames,
                                           websockify's "binary" subprotocol when the client offers it)
    WS   /console/serial/{server_id}?token=T  the server's serial console (binary frames with the
                                           "binary" subprotocol, else text frames; input either way)

The token (from POST /servers/{id}/remote-consoles) is spent before the upgrade: unknown, used, expired,
or for another server or protocol, the handshake is answered 403 with the reason, and nothing is started.
Then one ssh subprocess per connection carries the bytes, made as the controller's Ansible runs reach the
host (kvmfleet.compute.consoles): ``ssh -W 127.0.0.1:<vnc port>`` for VNC, ``ssh -tt ... virsh console
--force`` for serial. Nothing new listens on a host. The subprocess is killed (its process group) when the
websocket closes, when the service stops (``kill_all``), and by the kernel if the service dies
(PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import logging
import os
import signal
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from kvmfleet.service import register_periodic

log = logging.getLogger("kvmfleet.api.console")
PURGE_INTERVAL = 600.0  # seconds between sweeps of the tokens that expired an hour ago or more

router = APIRouter()
READ_SIZE = 65536
_children: set[int] = set()  # pids (= process groups) of the running console subprocesses
_libc = ctypes.CDLL(None, use_errno=True)


def _purge_tokens(store: Any) -> None:
    from kvmfleet.compute import consoles

    consoles.purge_expired(store)


register_periodic("console_token_purge", PURGE_INTERVAL, _purge_tokens)


def _die_with_parent() -> None:
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: no orphaned ssh if the service dies


def mount_novnc(app: FastAPI, directory: str | None) -> None:
    """Serve noVNC's files under /console/novnc/ (404s while the directory does not exist)."""
    app.mount("/console/novnc", StaticFiles(directory=directory or "/usr/share/novnc", check_dir=False),
              name="novnc")


async def _refuse(ws: WebSocket, status: int, reason: str) -> None:
    """Answer the handshake with an HTTP error (no upgrade); a server without the denial-response
    extension closes the handshake (403) instead."""
    log.info("console %s refused: %s", ws.url.path, reason)
    try:
        await ws.send_denial_response(JSONResponse({"error": {"code": status, "message": reason}}, status_code=status))
    except RuntimeError:
        await ws.close(code=1008, reason=reason[:120])


def _subprotocol(ws: WebSocket) -> str | None:
    offered = ws.scope.get("subprotocols") or []
    return "binary" if "binary" in offered else None


async def _open(ws: WebSocket, server_id: str, protocol: str) -> Any:
    """Spend the token; the target, or None once refused."""
    from kvmfleet.compute import consoles

    token = ws.query_params.get("token", "")
    try:
        return await run_in_threadpool(consoles.consume, ws.app.state.store, token, server_id, protocol)
    except consoles.TokenRefused as exc:
        await _refuse(ws, 403, f"console refused: {exc}")
        return None


@router.websocket("/console/vnc/{server_id}")
async def vnc(ws: WebSocket, server_id: str) -> None:
    from kvmfleet.compute import consoles

    target = await _open(ws, server_id, "vnc")
    if target is None:
        return
    try:
        port = await run_in_threadpool(consoles.vnc_port, target.host, target.domain)
    except consoles.ConsoleUnreachable as exc:
        await _refuse(ws, 502, f"console unreachable: {exc}")
        return
    if port is None:
        await _refuse(ws, 409, f"Instance {server_id} has no VNC display")
        return
    await ws.accept(subprotocol=_subprotocol(ws))
    await _pump(ws, consoles.tunnel_argv(target.host, port), text=False)


@router.websocket("/console/serial/{server_id}")
async def serial(ws: WebSocket, server_id: str) -> None:
    from kvmfleet.compute import consoles

    target = await _open(ws, server_id, "serial")
    if target is None:
        return
    subprotocol = _subprotocol(ws)
    await ws.accept(subprotocol=subprotocol)
    await _pump(ws, consoles.serial_argv(target.host, target.domain, tty=True), text=subprotocol is None)


async def _pump(ws: WebSocket, argv: list[str], text: bool) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True, preexec_fn=_die_with_parent)  # only prctl runs before exec
    _children.add(proc.pid)
    stdin, stdout = proc.stdin, proc.stdout
    if stdin is None or stdout is None:
        raise RuntimeError("console subprocess without pipes")
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    async def to_host() -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                data = (message.get("text") or "").encode("utf-8")
            stdin.write(data)
            await stdin.drain()

    async def to_client() -> None:
        while True:
            data = await stdout.read(READ_SIZE)
            if not data:
                return
            if text:
                chunk = decoder.decode(data)
                if chunk:
                    await ws.send_text(chunk)
            else:
                await ws.send_bytes(data)

    tasks = [asyncio.ensure_future(to_host()), asyncio.ensure_future(to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, WebSocketDisconnect, RuntimeError, ConnectionError, OSError):
                pass
        await _stop(proc)
        reason = ""
        if proc.returncode not in (0, None, -signal.SIGTERM, -signal.SIGKILL) and proc.stderr is not None:
            err = (await proc.stderr.read()).decode("utf-8", "replace").strip().splitlines()
            reason = f"console ended: {err[-1] if err else f'exit {proc.returncode}'}"[:120]
        try:
            await ws.close(code=1000 if not reason else 1011, reason=reason)
        except (WebSocketDisconnect, RuntimeError, ConnectionError, OSError):
            pass  # the client is gone already


async def _stop(proc: asyncio.subprocess.Process, grace: float = 3.0) -> None:
    if proc.returncode is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
    _children.discard(proc.pid)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def kill_all() -> int:
    """At service stop: kill every console subprocess still running; how many there were."""
    pids = list(_children)
    for pid in pids:
        _signal_group(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        _children.discard(pid)
    return len(pids)
