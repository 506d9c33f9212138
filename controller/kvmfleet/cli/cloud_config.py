"""`kvmfleet cloud-config`: a clouds.yaml entry for one user and project of this service."""

from __future__ import annotations

import sys
from typing import Any

import typer
import yaml

from kvmfleet.cli._secrets import password_from_stdin
from kvmfleet.cli.db import store_errors


def public_url() -> str:
    """api.public_url, else the URL of api.bind (a wildcard bind is reached on loopback)."""
    from kvmfleet.config import get_settings

    api = get_settings().api
    if api.public_url:
        return api.public_url.rstrip("/")
    host, _, port = api.bind.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if api.cert_file else 'http'}://{host}:{port}"


def cloud_entry(user_name: str, project_name: str, user_domain: str, project_domain: str,
                password: str | None = None, url: str | None = None) -> dict[str, Any]:
    from kvmfleet.config import get_settings

    auth: dict[str, Any] = {"auth_url": f"{url or public_url()}/identity", "username": user_name,
                            "project_name": project_name, "user_domain_name": user_domain,
                            "project_domain_name": project_domain}
    if password is not None:
        auth["password"] = password
    return {"auth": auth, "region_name": get_settings().api.region, "interface": "public",
            "identity_api_version": 3}


def cloud_config(
    user: str = typer.Option(..., "--user", help="User name or id (Default domain unless --domain)."),
    project: str = typer.Option(..., "--project", help="Project name or id the cloud entry is scoped to."),
    name: str = typer.Option("kvmfleet", "--name", help="The cloud's name in clouds.yaml."),
    domain: str = typer.Option("default", "--domain", help="The user's domain (id or name)."),
    with_password_stdin: bool = typer.Option(False, "--with-password-stdin",
                                             help="Put the password read from stdin into the entry."),
) -> None:
    """Print a clouds.yaml entry (for `openstack --os-cloud NAME`, openstacksdk, openstack.cloud). No
    password unless --with-password-stdin: clouds.yaml files holding one should be mode 0600."""
    from kvmfleet.identity import domains, projects, users
    from kvmfleet.store import get_store

    password = password_from_stdin() if with_password_stdin else None
    with store_errors(), get_store().transaction() as s:
        dom = domains.find_domain_cli(s, domain)
        found = users.find_user_cli(s, user, dom.id)
        proj = projects.find_project_cli(s, project)
        pdom = domains.get_domain(s, proj.domain_id)
        entry = cloud_entry(found.name, proj.name, dom.name, pdom.name, password)
    sys.stdout.write(yaml.safe_dump({"clouds": {name: entry}}, sort_keys=False))
