"""`kvmfleet user` commands: create, list, show, set, delete (Keystone users of the built-in identity)."""

from __future__ import annotations

from typing import Any

import typer

from kvmfleet.cli._secrets import password_from_stdin
from kvmfleet.cli.db import store_errors
from kvmfleet.cli.host import FORMAT_OPTION, Format, emit

app = typer.Typer(no_args_is_help=True)
COLUMNS = [("id", "ID"), ("name", "Name"), ("domain", "Domain"), ("enabled", "Enabled"),
           ("default_project", "Default project"), ("roles", "Roles")]
ROLE_OPTION = typer.Option(None, "--role", help="Role on --project (repeatable; default member): admin, manager, "
                                               "member, reader, service or one an admin made.")
DOMAIN_OPTION = typer.Option("default", "--domain", help="The user's domain (id or name).")


def _row(session: Any, user: Any) -> dict[str, Any]:
    from sqlalchemy import select

    from kvmfleet.store.models import Domain, Project, Role, RoleAssignment

    domain = session.get(Domain, user.domain_id)
    project = session.get(Project, user.default_project_id) if user.default_project_id else None
    grants = session.execute(
        select(Role.name, Project.name, Domain.name).select_from(RoleAssignment)
        .join(Role, Role.id == RoleAssignment.role_id)
        .outerjoin(Project, Project.id == RoleAssignment.project_id)
        .outerjoin(Domain, Domain.id == RoleAssignment.domain_id)
        .where(RoleAssignment.user_id == user.id).order_by(Role.name)).all()
    roles = [f"{r}@{p}" if p else f"{r}@domain:{d}" for r, p, d in grants]
    return {"id": user.id, "name": user.name, "domain": domain.name if domain else user.domain_id,
            "enabled": user.enabled, "default_project": project.name if project else None,
            "email": user.email, "description": user.description, "roles": ", ".join(roles),
            "password_set": user.password_hash is not None}


@app.command()
def create(
    name: str,
    project: str = typer.Option(None, "--project", help="Default project; the roles are given on it."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin's first line."),
    role: list[str] = ROLE_OPTION,
    domain: str = DOMAIN_OPTION,
    email: str = typer.Option(None, help="E-mail address."),
    description: str = typer.Option(None, help="Free text."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Create a user, with roles on a project."""
    from kvmfleet.identity import domains, projects, roles, users
    from kvmfleet.store import get_store
    from kvmfleet.store.errors import InvalidInput, NotFound

    password = password_from_stdin() if password_stdin else None
    with store_errors():
        if role and not project:
            raise InvalidInput("--role needs --project (the project the roles are on)")

        def run(s: Any) -> dict[str, Any]:
            dom = domains.find_domain_cli(s, domain)
            proj = projects.find_project_cli(s, project) if project else None
            wanted = []
            for r in (role or ["member"]) if proj is not None else []:
                try:
                    wanted.append(roles.find_role(s, r))
                except NotFound:
                    raise NotFound(f"role {r} not found (`kvmfleet identity bootstrap` makes the default "
                                   "roles)", role=r) from None
            user = users.create_user(s, name, password=password, domain_id=dom.id,
                                     default_project_id=proj.id if proj else None, email=email,
                                     description=description)
            for r in wanted:
                roles.grant(s, user.id, r.id, project_id=proj.id)
            return _row(s, user)

        row = get_store().run_in_transaction(run)
    emit(row, fmt)


@app.command("list")
def list_(domain: str = typer.Option(None, "--domain", help="Only this domain's users."),
          project: str = typer.Option(None, "--project", help="Only users with a role on this project."),
          fmt: Format = FORMAT_OPTION) -> None:
    """List users with their role assignments."""
    from kvmfleet.identity import domains, projects, roles, users
    from kvmfleet.store import get_store

    with store_errors(), get_store().transaction() as s:
        dom = domains.find_domain_cli(s, domain) if domain else None
        found = users.list_users(s, domain_id=dom.id if dom else None)
        if project:
            proj = projects.find_project_cli(s, project)
            holders = {a.user.id for a in roles.list_assignments(s, project_id=proj.id)}
            found = [u for u in found if u.id in holders]
        rows = [_row(s, u) for u in found]
    emit(rows, fmt, COLUMNS)


@app.command()
def show(user: str = typer.Argument(..., help="Name or id."), domain: str = DOMAIN_OPTION,
         fmt: Format = FORMAT_OPTION) -> None:
    """Show a user and its role assignments."""
    from kvmfleet.identity import domains, users
    from kvmfleet.store import get_store

    with store_errors(), get_store().transaction() as s:
        row = _row(s, users.find_user_cli(s, user, domains.find_domain_cli(s, domain).id))
    emit(row, fmt)


@app.command("set")
def set_(
    user: str = typer.Argument(..., help="Name or id."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read a new password from stdin's first "
                                                                        "line (the user's tokens are revoked)."),
    enable: bool = typer.Option(None, "--enable/--disable", help="Enable or disable the user (disabling revokes "
                                                                 "its tokens)."),
    email: str = typer.Option(None, help="E-mail address."),
    description: str = typer.Option(None, help="Free text."),
    project: str = typer.Option(None, "--project", help="Default project."),
    domain: str = DOMAIN_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Change a user's password, state or details."""
    from kvmfleet.identity import domains, projects, users
    from kvmfleet.store import get_store

    password = password_from_stdin() if password_stdin else None
    with store_errors():

        def run(s: Any) -> dict[str, Any]:
            found = users.find_user_cli(s, user, domains.find_domain_cli(s, domain).id)
            changes: dict[str, Any] = {}
            if password is not None:
                changes["password"] = password
            if enable is not None:
                changes["enabled"] = enable
            if email is not None:
                changes["email"] = email
            if description is not None:
                changes["description"] = description
            if project is not None:
                changes["default_project_id"] = projects.find_project_cli(s, project).id
            return _row(s, users.update_user(s, found.id, **changes))

        row = get_store().run_in_transaction(run)
    emit(row, fmt)


@app.command()
def delete(user: str = typer.Argument(..., help="Name or id."), domain: str = DOMAIN_OPTION) -> None:
    """Delete a user (its role assignments and tokens go with it)."""
    from kvmfleet.identity import domains, users
    from kvmfleet.store import get_store

    with store_errors():

        def run(s: Any) -> tuple[str, str]:
            found = users.find_user_cli(s, user, domains.find_domain_cli(s, domain).id)
            users.delete_user(s, found.id)
            return found.name, found.id

        name, uid = get_store().run_in_transaction(run)
    typer.echo(f"deleted user {name} ({uid})")
