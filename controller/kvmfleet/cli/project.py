"""`kvmfleet project` commands: create, list, show, delete; add-user, remove-user, users (role assignments)."""

from __future__ import annotations

from typing import Any

import typer

from kvmfleet.cli.db import store_errors
from kvmfleet.cli.host import FORMAT_OPTION, Format, emit

app = typer.Typer(no_args_is_help=True)
COLUMNS = [("id", "ID"), ("name", "Name"), ("enabled", "Enabled"), ("description", "Description")]


def _row(project: Any) -> dict[str, Any]:
    return {"id": project.id, "name": project.name, "enabled": project.enabled, "description": project.description,
            "domain_id": project.domain_id, "created_at": project.created_at.isoformat()}


@app.command()
def create(name: str, description: str = typer.Option("", help="Free text."),
           domain: str = typer.Option(None, "--domain", help="Identity domain (id or name; default: Default)."),
           fmt: Format = FORMAT_OPTION) -> None:
    """Create a project (a tenant: instances, quotas and server groups belong to one)."""
    from kvmfleet.store import get_store
    from kvmfleet.store.resources import create_project

    with store_errors():
        with get_store().transaction() as s:
            if domain is None:
                row = _row(create_project(s, name, description))
            else:
                from kvmfleet.identity import domains, projects

                dom = domains.find_domain_cli(s, domain)
                row = _row(projects.create_project(s, name, domain_id=dom.id, description=description))
        emit(row, fmt)


@app.command("list")
def list_(fmt: Format = FORMAT_OPTION) -> None:
    """List projects."""
    from sqlalchemy import select

    from kvmfleet.store import Project, get_store

    with store_errors():
        with get_store().transaction() as s:
            rows = [_row(p) for p in s.scalars(select(Project).order_by(Project.name))]
        emit(rows, fmt, COLUMNS)


@app.command()
def show(project: str = typer.Argument(..., help="Name or id."), fmt: Format = FORMAT_OPTION) -> None:
    """Show a project with its quota limits and usage."""
    from kvmfleet import quota
    from kvmfleet.store import get_project, get_store

    with store_errors():
        with get_store().transaction() as s:
            p = get_project(s, project)
            row = _row(p)
            row["quota"] = quota.limits(s, p)
            row["usage"] = quota.usage(s, p)
        emit(row, fmt)


@app.command()
def delete(project: str = typer.Argument(..., help="Name or id.")) -> None:
    """Delete a project that has no instances (its server groups and quota limits go with it)."""
    from kvmfleet.store import get_store
    from kvmfleet.store.resources import delete_project

    with store_errors():
        with get_store().transaction() as s:
            p = delete_project(s, project)
        typer.echo(f"deleted project {p.name} ({p.id})")


ROLE_OPTION = typer.Option(None, "--role", help="Role name or id (repeatable; default member).")
REMOVE_ROLE_OPTION = typer.Option(None, "--role", help="Role to take away (repeatable; default: all).")
USER_DOMAIN_OPTION = typer.Option("default", "--user-domain", help="The user's domain (id or name).")


@app.command("add-user")
def add_user(project: str = typer.Argument(..., help="Project name or id."),
             user: str = typer.Argument(..., help="User name or id."),
             role: list[str] = ROLE_OPTION, user_domain: str = USER_DOMAIN_OPTION) -> None:
    """Give a user roles on a project (a role held already is kept)."""
    from kvmfleet.identity import domains, projects, roles, users
    from kvmfleet.store import get_store

    with store_errors():

        def run(s: Any) -> tuple[str, str, list[str]]:
            proj = projects.find_project_cli(s, project)
            found = users.find_user_cli(s, user, domains.find_domain_cli(s, user_domain).id)
            given = [roles.find_role(s, r) for r in role or ["member"]]
            for r in given:
                roles.grant(s, found.id, r.id, project_id=proj.id)
            return found.name, proj.name, [r.name for r in given]

        name, pname, names = get_store().run_in_transaction(run)
    typer.echo(f"user {name} has role(s) {', '.join(names)} on project {pname}")


@app.command("remove-user")
def remove_user(project: str = typer.Argument(..., help="Project name or id."),
                user: str = typer.Argument(..., help="User name or id."),
                role: list[str] = REMOVE_ROLE_OPTION,
                user_domain: str = USER_DOMAIN_OPTION) -> None:
    """Take roles on a project away from a user (its tokens on the project lose them at once)."""
    from kvmfleet.identity import domains, projects, roles, users
    from kvmfleet.store import get_store

    with store_errors():

        def run(s: Any) -> tuple[str, str, list[str]]:
            proj = projects.find_project_cli(s, project)
            found = users.find_user_cli(s, user, domains.find_domain_cli(s, user_domain).id)
            held = roles.roles_on(s, found.id, project_id=proj.id)
            taken = [roles.find_role(s, r) for r in role] if role else held
            for r in taken:
                roles.revoke(s, found.id, r.id, project_id=proj.id)
            return found.name, proj.name, [r.name for r in taken]

        name, pname, names = get_store().run_in_transaction(run)
    typer.echo(f"user {name} no longer has role(s) {', '.join(names) or '(none held)'} on project {pname}")


@app.command("users")
def users_(project: str = typer.Argument(..., help="Project name or id."), fmt: Format = FORMAT_OPTION) -> None:
    """The users holding roles on a project, with those roles."""
    from kvmfleet.identity import projects, roles
    from kvmfleet.store import get_store

    with store_errors(), get_store().transaction() as s:
        proj = projects.find_project_cli(s, project)
        by_user: dict[str, dict[str, Any]] = {}
        for a in roles.list_assignments(s, project_id=proj.id):
            row = by_user.setdefault(a.user.id, {"user_id": a.user.id, "user": a.user.name, "roles": []})
            row["roles"].append(a.role.name)
        rows = [{**r, "roles": ", ".join(r["roles"])} for r in by_user.values()]
    emit(rows, fmt, [("user_id", "User ID"), ("user", "User"), ("roles", "Roles")])
