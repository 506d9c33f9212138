"""Bootstrap (keystone-manage bootstrap, idempotent) and bcrypt password hashes, on both backends."""

from __future__ import annotations

import bcrypt
import pytest
from kvmfleet import identity
from kvmfleet.identity import passwords, roles, tokens
from kvmfleet.identity.errors import AuthFailed
from kvmfleet.store.errors import InvalidInput
from kvmfleet.store.models import Domain, Project, Role, RoleAssignment, User
from kvmfleet.store.resources import create_project
from sqlalchemy import func, select


def _counts(store):
    with store.transaction() as s:
        return {m.__name__: s.execute(select(func.count()).select_from(m)).scalar_one()
                for m in (Domain, Project, User, Role, RoleAssignment)}


def test_bootstrap_makes_keystones_defaults(ident):
    with ident.store.transaction() as s:
        assert [(d.id, d.name, d.enabled) for d in s.scalars(select(Domain))] == [("default", "Default", True)]
        assert sorted(r.name for r in s.scalars(select(Role))) == sorted(roles.DEFAULT_ROLES)
        admin = s.scalars(select(User).where(User.name == "admin")).one()
        project = s.scalars(select(Project).where(Project.name == "admin")).one()
        held = [r.name for r in roles.roles_on(s, admin.id, project_id=project.id)]
        assert held == ["admin"] and project.domain_id == "default" and admin.domain_id == "default"
    _, info = ident.token("admin", ident.admin_password, "admin")
    assert info.roles == ["admin"] and roles.implied(info.roles) == ["admin", "manager", "member", "reader"]


def test_bootstrap_again_changes_nothing_then_resets_the_password(ident):
    before = _counts(ident.store)
    report = identity.bootstrap(ident.store, ident.admin_password)
    assert report["created"] == [] and report["updated"] == []
    assert _counts(ident.store) == before
    token, _ = ident.token("admin", ident.admin_password, "admin")
    report = identity.bootstrap(ident.store, "a-new-admin-password")
    assert report["updated"] == ["user admin password reset"] and _counts(ident.store) == before
    with pytest.raises(AuthFailed):
        tokens.validate(ident.store, token)
    with pytest.raises(AuthFailed):
        ident.token("admin", ident.admin_password, "admin")
    assert ident.token("admin", "a-new-admin-password", "admin")[1].user_name == "admin"


def test_projects_made_before_bootstrap_become_keystone_projects(db_url):
    from kvmfleet.store import open_store

    store = open_store(db_url)
    try:
        pid = store.run_in_transaction(lambda s: create_project(s, "demo").id)
        identity.bootstrap(store, "bootstrap-Pa55word")
        with store.transaction() as s:
            demo = s.get(Project, pid)
            assert (demo.name, demo.domain_id) == ("demo", "default")
    finally:
        store.dispose()


def test_passwords_are_bcrypt_hashes(ident):
    pid = ident.project("p1")
    long_pw = "é" * 100  # 200 bytes: beyond bcrypt's 72-byte input, still checked in full
    ident.user("alice", long_pw, pid)
    with ident.store.transaction() as s:
        stored = s.scalars(select(User.password_hash).where(User.name == "alice")).one()
    assert stored.startswith("$2b$12$") and long_pw not in stored
    assert bcrypt.checkpw(passwords._prepared(long_pw), stored.encode())
    assert passwords.verify(long_pw, stored) and not passwords.verify(long_pw[:-1], stored)
    assert ident.token("alice", long_pw, "p1")[1].user_name == "alice"
    with pytest.raises(AuthFailed):
        ident.token("alice", "é" * 99 + "e", "p1")


@pytest.mark.parametrize("bad", ["", None, 42, "x" * 4097])
def test_unacceptable_passwords(bad):
    with pytest.raises(InvalidInput) as exc:
        passwords.hash_password(bad)
    assert "x" * 100 not in str(exc.value)
