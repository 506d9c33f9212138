"""`kvmfleet server` commands: the instance lifecycle.




"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kvmfleet.cli.host import FORMAT_OPTION, Format, console, emit, err_console, errors_as_one_line

app = typer.Typer(no_args_is_help=True)

SERVER_COLUMNS = [("id", "ID"), ("name", "Name"), ("status", "Status"), ("task_state", "Task"),
                  ("power_state", "Power"), ("host", "Host"), ("host_status", "Host status"), ("flavor", "Flavor"),
                  ("image", "Image")]
PROJECT_OPTION = typer.Option(None, "--project", envvar="KVMFLEET_PROJECT",
                              help="Project name or id (default: any; on create the project named default).")


def _store() -> Any:
    from kvmfleet.store import get_store

    return get_store()


def _print_explanation(data: dict[str, Any], fmt: Format) -> None:
    if fmt is Format.json:
        emit(data, fmt)
        return
    console.print(f"request: {escape(str(data['request']))}", highlight=False, soft_wrap=True)
    console.print("filters: " + ", ".join(f"{f['filter']} {f['before']}->{f['after']}" for f in data["filters"]),
                  highlight=False, soft_wrap=True)
    if data.get("chosen"):
        console.print(f"[green]chosen host: {data['chosen']}[/green]")
    else:
        console.print(f"[red]no valid host[/red]: {escape(str(data.get('message')))}", highlight=False, soft_wrap=True)
    rows = []
    for rank, w in enumerate(data.get("weighed") or [], 1):
        shares = ", ".join(f"{k} {v:.3f}" for k, v in w["weights"].items())
        rows.append({"rank": rank, "host": w["host"], "result": "chosen" if rank == 1 else "passed",
                     "detail": f"weight {w['weight']:.3f} ({shares})"})
    for host, why in sorted((data.get("rejected") or {}).items()):
        rows.append({"rank": "-", "host": host, "result": "rejected", "detail": why})
    emit(rows, fmt, [("rank", "#"), ("host", "Host"), ("result", "Result"), ("detail", "Weight / rejected by")])


def _build_with_progress(names: dict[str, str], run: Any) -> dict[str, str]:
    """Show each server's progress while `run(progress)` builds them."""
    with Progress(SpinnerColumn(), TextColumn("{task.fields[name]}", style="bold"), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=err_console, transient=False) as progress:
        tasks = {u: progress.add_task("queued", name=n) for u, n in names.items()}

        def report(uuid: str, message: str) -> None:
            if uuid not in tasks:
                return
            done = message.startswith(("ACTIVE", "ERROR"))
            progress.update(tasks[uuid], description=escape(message), completed=100 if done else None,
                            total=100 if done else None)

        return run(report)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Server name, any text (with --count N: NAME-1..NAME-N)."),
    flavor: str = typer.Option(..., "--flavor", help="Flavor name or id."),
    image: str = typer.Option(..., "--image", help="Image name or id."),
    project: str = PROJECT_OPTION,
    group: str = typer.Option(None, "--group", help="Server group name or id."),
    count: int = typer.Option(1, "--count", min=1, help="How many servers."),
    az: str = typer.Option(None, "--az", help="Availability zone."),
    user_data: Path = typer.Option(None, "--user-data", help="File passed to the guest as user data."),  # noqa: B008
    network: str = typer.Option("default", "--network", help="libvirt network for the NIC ('' for none)."),
    nic: list[str] = typer.Option(None, "--nic", help="A NIC, in order (repeat for more; replaces --network): "  # noqa: B008
                                  "net=NETWORK[,fixed-ip=IP] (a tenant network's name or id, or 'default') or "
                                  "port=PORT."),
    key_name: str = typer.Option(None, "--key-name", help="Key pair whose public key the guest gets."),
    security_group: list[str] = typer.Option(None, "--security-group", help="Security group (name or id) of the "  # noqa: B008
                                             "ports the create makes (repeat for more; default: 'default')."),
    wait: bool = typer.Option(False, "--wait", help="Build now, show progress, return when done."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the scheduler's decision; store nothing."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Create servers."""
    from kvmfleet.compute import api, tasks
    from kvmfleet.compute.errors import InvalidRequest

    with errors_as_one_line():
        data = None
        if user_data is not None:
            try:
                data = user_data.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidRequest(f"cannot read user data file {user_data}: {exc}") from exc
        req = api.CreateRequest(name=name, flavor=flavor, image=image, project=project, server_group=group,
                                count=count, availability_zone=az, user_data=data, network=network or None,
                                networks=_parse_nics(nic) if nic else None, key_name=key_name,
                                security_groups=list(security_group or []) or None, admin=True)
        store = _store()
        if dry_run:
            _print_explanation(api.dry_run(store, req), fmt)
            return
        if not wait:
            uuids = tasks.submit_create(store, req)  # queued: a running service, or the process below, builds
            _spawn_build(uuids)
            rows = [api.show_server(store, u) for u in uuids]
            emit(rows, fmt, SERVER_COLUMNS)
            return
        # The tasks are owned by this process: killed, it leaves them to recovery (kvmfleet.compute.recovery).
        owner = tasks.owner_id("cli")
        ids, uuids = tasks.submit_create_owned(store, req, owner)
        names = {u: api.show_server(store, u)["name"] for u in uuids}
        statuses = _build_with_progress(
            names, lambda report: tasks.run_owned(store, tasks.rows_of(store, ids), owner, progress=report))
        rows = [api.show_server(store, u) for u in uuids]
        emit(rows, fmt, SERVER_COLUMNS)
        failed = [r for r in rows if statuses.get(r["id"]) != "ACTIVE"]
        for row in failed:
            err_console.print(f"[red]error:[/red] server {row['name']} ({row['id']}) is {row['status']}: "
                              f"{escape(row.get('fault') or 'no fault recorded')}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _parse_nics(specs: list[str]) -> list[Any]:
    """--nic values as CreateRequest.networks items: 'default' (the provider network) or a tenant NIC."""
    from kvmfleet.compute.errors import InvalidRequest

    out: list[Any] = []
    for spec in specs:
        fields = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
        unknown = set(fields) - {"net", "fixed-ip", "port"}
        if unknown or not (("net" in fields) ^ ("port" in fields)) or len(fields) != spec.count("=") \
                or ("fixed-ip" in fields and "net" not in fields):
            raise InvalidRequest(f"--nic {spec!r}: give net=NETWORK[,fixed-ip=IP] or port=PORT")
        if fields.get("net") == "default" and "fixed-ip" not in fields:
            out.append("default")
        elif "port" in fields:
            out.append({"port_id": fields["port"]})
        else:
            out.append({"network_id": fields["net"], **({"fixed_ip": fields["fixed-ip"]} if "fixed-ip" in fields else {})})
    return out


def _spawn_build(uuids: list[str]) -> None:
    """Run the build in a detached process that outlives this command (its log goes to the state dir)."""
    from kvmfleet import paths

    logs = paths.state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / f"build-{uuids[0]}.log", "ab")  # noqa: SIM115 - handed to the child
    cmd = [sys.executable, "-m", "kvmfleet", "server", "_build", *uuids]
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                     env=os.environ.copy(), close_fds=True)
    log.close()


@app.command("_build", hidden=True)
def build_(uuids: list[str]) -> None:
    """Build persisted servers whose tasks are still queued (used by `create` without --wait)."""
    from kvmfleet.compute import tasks

    with errors_as_one_line():
        statuses = tasks.build_queued(_store(), uuids)
        for uuid, status in statuses.items():
            print(f"{uuid} {status}")


@app.command("list")
def list_(project: str = PROJECT_OPTION, host: str = typer.Option(None, "--host"), fmt: Format = FORMAT_OPTION) -> None:
    """List servers."""
    from kvmfleet.compute import api

    with errors_as_one_line():
        emit(api.list_servers(_store(), project, host), fmt, SERVER_COLUMNS)


@app.command("show")
def show(server: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Show one server."""
    from kvmfleet.compute import api

    with errors_as_one_line():
        emit(api.show_server(_store(), server, project), fmt)


@app.command("events")
def events(server: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """The server's actions and their events (Nova's instance action log)."""
    from kvmfleet.compute import api

    with errors_as_one_line():
        data = api.server_events(_store(), server, project)
        if fmt is Format.json:
            emit(data, fmt)
            return
        rows = []
        for action in data:
            rows.append({"when": action["start_time"], "what": action["action"], "result": "",
                         "host": "", "detail": action["message"] or action["request_id"]})
            for ev in action["events"]:
                rows.append({"when": ev["start_time"], "what": "  " + ev["event"], "result": ev["result"] or "running",
                             "host": ev["host"], "detail": ev["error"] or (f"job {ev['job_id']}" if ev["job_id"] else "")})
        emit(rows, fmt, [("when", "Start"), ("what", "Action / event"), ("result", "Result"), ("host", "Host"),
                         ("detail", "Detail")])


def _power(server: str, op: str, project: str | None, fmt: Format, **kwargs: Any) -> None:
    from kvmfleet.compute import api

    with errors_as_one_line():
        status = api.power_action(_store(), server, op, project, **kwargs)
        _done(server, status, fmt)


def _done(server: str, status: str, fmt: Format) -> None:
    if fmt is Format.json:
        emit({"server": server, "status": status}, fmt)
    else:
        console.print(f"server {server}: {status}", highlight=False, soft_wrap=True)


@app.command("start")
def start(server: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Power on a stopped server."""
    _power(server, "start", project, fmt)


@app.command("stop")
def stop(server: str, timeout: int = typer.Option(60, "--timeout", help="Seconds of graceful shutdown before "
                                                                          "forcing it off."),
         project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Shut a server down (ACPI), forcing it off after --timeout."""
    _power(server, "stop", project, fmt, stop_timeout=timeout)


@app.command("reboot")
def reboot(server: str, hard: bool = typer.Option(False, "--hard", help="Power-cycle instead of a graceful reboot."),
           project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Reboot a server (graceful shutdown and start; --hard: forced off and start)."""
    _power(server, "reboot_hard" if hard else "reboot", project, fmt)


@app.command("pause")
def pause(server: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Pause a server's vCPUs."""
    _power(server, "pause", project, fmt)


@app.command("unpause")
def unpause(server: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Unpause a paused server."""
    _power(server, "unpause", project, fmt)


@app.command("suspend")
def suspend(server: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Save a server's memory to disk and stop it (libvirt managed save)."""
    _power(server, "suspend", project, fmt)


@app.command("resume")
def resume(server: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Resume a suspended server."""
    _power(server, "resume", project, fmt)


@app.command("delete")
def delete(servers: list[str], project: str = PROJECT_OPTION) -> None:
    """Delete servers: domain and disks removed from the host, allocation released."""
    from kvmfleet.compute import api

    with errors_as_one_line():
        errors = api.delete_many(_store(), servers, project)
        for error in errors:
            err_console.print(f"[red]error:[/red] {escape(error)}", highlight=False, soft_wrap=True)
        if not errors:
            console.print(f"deleted: {' '.join(servers)}", highlight=False, soft_wrap=True)
    if errors:
        raise typer.Exit(1)


@app.command("resize")
def resize(server: str, flavor: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Cold-resize a server to another flavor; then confirm-resize or revert-resize."""
    from kvmfleet.compute import api

    with errors_as_one_line():
        _done(server, api.resize(_store(), server, flavor, project), fmt)


@app.command("migrate")
def migrate(server: str, live: bool = typer.Option(False, "--live", help="Live migration: the guest keeps "
                                                   "running while its memory and disks are copied."),
            host: str = typer.Option(None, "--host", help="Destination (default: the scheduler's choice; a named "
                                     "host is checked by the same filters)."),
            project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Move a server to another host: live (ACTIVE or PAUSED servers), or cold (then confirm-resize or
    revert-resize, as after a resize)."""
    from kvmfleet.compute import api

    with errors_as_one_line():
        if live:
            _done(server, api.live_migrate(_store(), server, host, project), fmt)
        else:
            _done(server, api.migrate(_store(), server, host, project), fmt)


MIGRATION_COLUMNS = [("id", "ID"), ("type", "Type"), ("status", "Status"), ("source", "Source"), ("dest", "Dest"),
                     ("memory_processed", "Memory bytes"), ("disk_processed", "Disk bytes"),
                     ("downtime_ms", "Downtime ms"), ("created_at", "Created"), ("error", "Error")]


@app.command("migrations")
def migrations_(server: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """The server's migrations (live, cold, resize, evacuation), newest first."""
    from kvmfleet.compute import migrations
    from kvmfleet.compute.common import find_instance
    from kvmfleet.store import api as store_api

    with errors_as_one_line():
        with _store().transaction() as session:
            pid = store_api.get_project(session, project).id if project else None
            inst = find_instance(session, server, pid)
            rows = [migrations.as_dict(r) for r in migrations.query(session, instance_uuid=inst.uuid)]
        emit(rows, fmt, MIGRATION_COLUMNS)


@app.command("migration-abort")
def migration_abort(server: str, migration: int, project: str = PROJECT_OPTION) -> None:
    """Abort a live migration in progress; the server keeps running on its source."""
    from kvmfleet.compute import migrations
    from kvmfleet.compute.common import find_instance
    from kvmfleet.store import api as store_api

    with errors_as_one_line():
        store = _store()
        with store.transaction() as session:
            pid = store_api.get_project(session, project).id if project else None
            uuid = find_instance(session, server, pid).uuid
        migrations.abort(store, uuid, migration).join()
        console.print(f"migration {migration} of server {server}: abort sent", highlight=False)


@app.command("confirm-resize")
def confirm_resize(server: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Keep the new flavor (drops the old flavor's hold)."""
    from kvmfleet.compute import api

    with errors_as_one_line():
        _done(server, api.confirm_resize(_store(), server, project), fmt)


@app.command("revert-resize")
def revert_resize(server: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Go back to the old flavor."""
    from kvmfleet.compute import api

    with errors_as_one_line():
        _done(server, api.revert_resize(_store(), server, project), fmt)


@app.command("evacuate")
def evacuate(server: str, host: str = typer.Option(None, "--host", help="Destination (default: the scheduler's "
                                                   "choice; a named host is checked by the same filters)."),
             project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Rebuild a server of a down (or forced down) host on another host from its image: same uuid, name,
    MACs and metadata; a stopped server stays stopped. Refused while its host is up."""
    from kvmfleet.compute import evacuate as evacuation

    with errors_as_one_line():
        _done(server, evacuation.evacuate(_store(), server, host, project), fmt)


@app.command("rebuild")
def rebuild(server: str, image: str = typer.Option(None, "--image", help="Image (default: the current one)."),
            project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Give a server a fresh root disk from an image; same id, name, flavor and MAC."""
    from kvmfleet.compute import api

    with errors_as_one_line():
        _done(server, api.rebuild(_store(), server, image, project), fmt)


@app.command("reset-state")
def reset_state(server: str, active: bool = typer.Option(False, "--active", help="ACTIVE instead of ERROR."),
                project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Clear a stuck task: the server becomes ERROR (or ACTIVE) with no task (admin)."""
    from kvmfleet.compute import api

    with errors_as_one_line():
        _done(server, api.reset_state(_store(), server, active, project), fmt)


@app.command("console-log")
def console_log(server: str, lines: int = typer.Option(50, "--lines", "-n", min=1),
                project: str = PROJECT_OPTION) -> None:
    """The tail of the server's serial console log, read from its host."""
    from kvmfleet.compute import api

    with errors_as_one_line():
        sys.stdout.write(api.console_log(_store(), server, lines, project) + "\n")


@app.command("console")
def console_(server: str, project: str = PROJECT_OPTION) -> None:
    """Attach the server's serial console in this terminal (Ctrl-] to leave, as virsh console).

    Runs `virsh console --force` on the server's host over SSH, with the connection vars Ansible uses
    (host key checking on); another session on that console is taken over."""
    from kvmfleet.compute import consoles

    with errors_as_one_line():
        target = consoles.cli_target(_store(), server, project)
    err_console.print(f"server {escape(server)}: serial console on host {escape(target.host.name)} "
                      "(Ctrl-] to leave)", highlight=False)
    rc = subprocess.call(consoles.serial_argv(target.host, target.domain, tty=True))
    if rc:  # ssh's own failure is 255, virsh's is 1
        raise typer.Exit(rc)


@app.command("interfaces")
def interfaces_(server: str, project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """A server's NICs: port, network, MAC, state and fixed IPs."""
    from kvmfleet.compute import interfaces
    from kvmfleet.compute.common import find_instance

    with errors_as_one_line():
        store = _store()
        rows = store.run_in_transaction(lambda session: interfaces.describe(
            session, find_instance(session, server, interfaces.project_id_of(session, project))))
    emit([{**r, "fixed_ips": ", ".join(a["ip_address"] for a in r["fixed_ips"])} for r in rows], fmt,
         [("port_id", "Port"), ("net_id", "Network"), ("mac_addr", "MAC"), ("port_state", "State"),
          ("fixed_ips", "Fixed IPs")])


@app.command("interface-attach")
def interface_attach(server: str, network: str = typer.Option(None, "--net", help="Network name or id: a new port."),
                     port: str = typer.Option(None, "--port", help="An existing, unbound port."),
                     fixed_ip: str = typer.Option(None, "--fixed-ip", help="The new port's address (with --net)."),
                     project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Hot-plug a NIC into a running (or stopped) server."""
    from kvmfleet.compute import interfaces
    from kvmfleet.compute.errors import InvalidRequest

    with errors_as_one_line():
        if (network is None) == (port is None):
            raise InvalidRequest("give --net or --port")
        att = interfaces.attach(_store(), server, project, network_id=network, port_id=port, fixed_ip=fixed_ip,
                                admin=True)
    emit(att, fmt)


@app.command("interface-detach")
def interface_detach(server: str, port: str = typer.Argument(..., help="The port (see `server interfaces`)."),
                     project: str = PROJECT_OPTION) -> None:
    """Unplug a NIC; a port made for the server is deleted, a given one is unbound."""
    from kvmfleet.compute import interfaces

    with errors_as_one_line():
        interfaces.detach(_store(), server, port, project)
