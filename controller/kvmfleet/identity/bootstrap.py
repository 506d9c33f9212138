"""``kvmfleet identity bootstrap``: what ``keystone-manage bootstrap`` makes, idempotently.

The Default domain (id ``default``), the roles admin, manager, member, reader, service, the project
``admin`` and the user ``admin`` holding role admin on it. Run again, it creates what is missing,
re-enables the admin user and resets its password when it differs (revoking its tokens), and changes
nothing else. Projects made before (by the CLI) keep their ids and are Keystone projects of Default.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet.identity import domains, passwords, roles, tokens, users
from kvmfleet.store.models import Domain, Project, Role, User


def bootstrap(store: Any, admin_password: str, *, admin_username: str = "admin",
              project_name: str = "admin") -> dict[str, Any]:
    """Returns what was created or changed (names only, never the password)."""
    passwords.check_acceptable(admin_password)
    password_hash = passwords.hash_password(admin_password)  # outside the transaction: bcrypt is slow

    def run(session: Session) -> dict[str, Any]:
        report: dict[str, Any] = {"created": [], "updated": []}
        if session.get(Domain, domains.DEFAULT_DOMAIN_ID) is None:
            domains.create_domain(session, domains.DEFAULT_DOMAIN_NAME, "The default domain",
                                  domain_id=domains.DEFAULT_DOMAIN_ID)
            report["created"].append("domain Default")
        by_name = {r.name: r for r in session.scalars(select(Role))}
        for name in roles.DEFAULT_ROLES:
            if name not in by_name:
                by_name[name] = roles.create_role(session, name)
                report["created"].append(f"role {name}")
        project = session.scalars(select(Project).where(Project.name == project_name)).first()
        if project is None:
            from kvmfleet.identity.projects import create_project

            project = create_project(session, project_name, domain_id=domains.DEFAULT_DOMAIN_ID,
                                     description="Bootstrap project for initializing the cloud.")
            report["created"].append(f"project {project_name}")
        user = session.scalars(select(User).where(User.name == admin_username,
                                                  User.domain_id == domains.DEFAULT_DOMAIN_ID)).first()
        if user is None:
            user = users.create_user(session, admin_username, domain_id=domains.DEFAULT_DOMAIN_ID)
            user.password_hash = password_hash
            report["created"].append(f"user {admin_username}")
        else:
            if not user.enabled:
                user.enabled = True
                report["updated"].append(f"user {admin_username} enabled")
            if not passwords.verify(admin_password, user.password_hash):
                user.password_hash = password_hash
                tokens.revoke_user_tokens(session, user.id)
                report["updated"].append(f"user {admin_username} password reset")
        admin_role = by_name["admin"]
        if admin_role.id not in {r.id for r in roles.roles_on(session, user.id, project_id=project.id)}:
            roles.grant(session, user.id, admin_role.id, project_id=project.id)
            report["created"].append(f"role admin for user {admin_username} on project {project_name}")
        session.flush()
        report.update({"domain": domains.DEFAULT_DOMAIN_ID, "project": project.id, "user": user.id})
        return report

    return store.run_in_transaction(run)
