"""The `kvmfleet` command. Each resource's commands live in their own module."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="kvmfleet: VM instances on KVM hosts, without agents.")


def _register() -> None:
    from kvmfleet.cli import (
        bench,
        cloud_config,
        db,
        flavor,
        host,
        identity,
        image,
        lab,
        network,
        project,
        quota,
        serve,
        server,
        server_group,
        user,
        volume,
    )

    app.add_typer(server.app, name="server", help="Servers (instances): create, list, lifecycle actions.")
    app.add_typer(flavor.app, name="flavor", help="Flavors (instance sizes).")
    app.add_typer(image.app, name="image", help="Guest images.")
    app.add_typer(server_group.app, name="server-group", help="Server groups (affinity policies).")
    app.add_typer(volume.app, name="volume", help="Volumes (block storage): create, attach, extend, delete.")
    app.add_typer(network.network_app, name="network", help="Tenant networks (VXLAN, VLAN, flat).")
    app.add_typer(network.subnet_app, name="subnet", help="IPv4 subnets of tenant networks.")
    app.add_typer(network.port_app, name="port", help="Ports (a NIC's MAC and fixed IPs) on tenant networks.")
    app.add_typer(network.security_group_app, name="security-group", help="Security groups and their rules.")
    app.add_typer(host.app, name="host", help="Compute hosts.")
    app.add_typer(project.app, name="project", help="Projects (tenants).")
    app.add_typer(identity.app, name="identity", help="Identity (Keystone v3): bootstrap, token purge.")
    app.add_typer(user.app, name="user", help="Users of the built-in identity service.")
    app.command("cloud-config")(cloud_config.cloud_config)
    app.add_typer(quota.app, name="quota", help="Quota limits and usage per project.")
    app.add_typer(db.app, name="db", help="The store's schema.")
    app.add_typer(lab.app, name="lab", help="The one-machine lab of compute hosts.")
    app.add_typer(serve.app, name="serve", help="The OpenStack-compatible REST service and its task workers.")
    app.add_typer(bench.app, name="bench", help="Benchmarks (figures, never pass/fail).")


class _LazyFileHandler(logging.FileHandler):
    """Opens (and creates the folder of) the log file at the first record, so commands that log nothing
    (lab, image) never create the state directory."""

    def _open(self):  # type: ignore[no-untyped-def]
        from kvmfleet import paths

        paths.ensure_private_dir(Path(self.baseFilename).parent)  # the state dir is 0700, never 0755
        return super()._open()


def _setup_logging() -> None:
    """The controller's log (scheduler decisions, NoValidHost filter counts) goes to
    <state dir>/logs/kvmfleet.log; the CLI shows errors once, as its own one-line message.
    KVMFLEET_LOG_LEVEL sets the level (default INFO)."""
    from kvmfleet import paths

    logger = logging.getLogger("kvmfleet")
    if logger.handlers:
        return
    handler = _LazyFileHandler(paths.state_dir() / "logs" / "kvmfleet.log", delay=True, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(os.environ.get("KVMFLEET_LOG_LEVEL", "INFO").upper())
    logger.propagate = False


def main() -> None:
    _setup_logging()
    _register()
    app()
