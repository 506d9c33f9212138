"""Tokens against a real store (SQLite and PostgreSQL): issue, validate, revoke, expiry, rescoping, and
everything that must stop a token working."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from kvmfleet.identity import auth, roles, tokens, users
from kvmfleet.identity.errors import AuthFailed
from kvmfleet.store.models import Project, Token
from sqlalchemy import event, select, update


def _rows(store):
    with store.transaction() as s:
        return list(s.scalars(select(Token)))


def test_token_is_stored_only_as_its_sha256(ident):
    pid = ident.project("p1")
    ident.user("alice", "alice-pw", pid)
    token, info = ident.token("alice", "alice-pw", "p1")
    rows = _rows(ident.store)
    assert [r.id_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert all(token not in str(v) for r in rows for v in vars(r).values())
    assert len(token) >= 43 and info.project_name == "p1" and info.roles == ["member"]
    got = tokens.validate(ident.store, token)
    assert (got.user_name, got.project_id, got.roles, got.methods) == ("alice", pid, ["member"], ["password"])
    assert got.expires_at - got.issued_at == dt.timedelta(seconds=3600)


def test_a_token_never_starts_with_a_dash():
    # `openstack token revoke <token>` takes the token as a positional argument, which argparse refuses
    # when it starts with '-' (1 in 64 urlsafe strings did). 3000 draws: about 47 would without the rule.
    drawn = [tokens.new_token_string() for _ in range(3000)]
    assert not [t for t in drawn if t.startswith("-")]
    assert len(set(drawn)) == len(drawn) and all(len(t) == 43 for t in drawn)


def test_validate_is_one_query(ident):
    pid = ident.project("p1")
    ident.user("alice", "alice-pw", pid, roles=("member", "reader"))
    token, _ = ident.token("alice", "alice-pw", "p1")
    statements = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(ident.store.engine, "before_cursor_execute", count)
    try:
        info = tokens.validate(ident.store, token)
    finally:
        event.remove(ident.store.engine, "before_cursor_execute", count)
    assert info.roles == ["member", "reader"]
    assert len(statements) == 1, statements


@pytest.mark.parametrize("bad", ["", "x", "forged-" + "a" * 40, "a" * 5000])
def test_unknown_tokens_are_refused(ident, bad):
    with pytest.raises(AuthFailed):
        tokens.validate(ident.store, bad)


def test_wrong_password_unknown_user_and_disabled_user_are_one_401(ident):
    pid = ident.project("p1")
    uid = ident.user("alice", "alice-pw", pid)
    for name, pw in (("alice", "wrong"), ("nobody", "alice-pw"), ("alice", "")):
        with pytest.raises(AuthFailed) as exc:
            ident.token(name, pw, "p1")
        assert str(exc.value) == "The request you have made requires authentication."
    ident.store.run_in_transaction(lambda s: users.update_user(s, uid, enabled=False))
    with pytest.raises(AuthFailed):
        ident.token("alice", "alice-pw", "p1")


def test_revoked_stays_revoked_and_takes_rescoped_children(ident):
    pid = ident.project("p1")
    ident.project("p2")
    uid = ident.user("alice", "alice-pw", pid)
    ident.store.run_in_transaction(
        lambda s: roles.grant(s, uid, roles.find_role(s, "reader").id, project_id=s.scalars(
            select(Project.id).where(Project.name == "p2")).one()))
    parent, pinfo = ident.token("alice", "alice-pw", scope="unscoped")
    assert pinfo.scope == "unscoped" and pinfo.roles == []
    child, cinfo = auth.authenticate(ident.store, {"identity": {"methods": ["token"], "token": {"id": parent}},
                                                   "scope": {"project": {"name": "p2", "domain": {"id": "default"}}}})
    assert cinfo.methods == ["token", "password"] and cinfo.project_name == "p2" and cinfo.roles == ["reader"]
    assert cinfo.audit_ids[1] == pinfo.audit_ids[0] and cinfo.expires_at <= pinfo.expires_at
    other, _ = ident.token("alice", "alice-pw", "p1")
    tokens.revoke(ident.store, parent)
    for t in (parent, child):
        with pytest.raises(AuthFailed):
            tokens.validate(ident.store, t)
    assert tokens.validate(ident.store, other).project_name == "p1"
    with pytest.raises(AuthFailed):
        tokens.revoke(ident.store, parent)


def test_expired_token_is_refused_and_purged(ident):
    pid = ident.project("p1")
    ident.user("alice", "alice-pw", pid)
    token, info = ident.token("alice", "alice-pw", "p1")
    live, _ = ident.token("alice", "alice-pw", "p1")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    ident.store.run_in_transaction(lambda s: s.execute(
        update(Token).where(Token.id_hash == info.token_id_hash).values(expires_at=past)))
    with pytest.raises(AuthFailed):
        tokens.validate(ident.store, token)
    assert tokens.purge_expired(ident.store) == 1
    assert len(_rows(ident.store)) == 1
    assert tokens.validate(ident.store, live).user_name == "alice"


def test_token_stops_with_its_role_project_or_user(ident):
    pid = ident.project("p1")
    uid = ident.user("alice", "alice-pw", pid)
    member = ident.store.run_in_transaction(lambda s: roles.find_role(s, "member").id)
    token, _ = ident.token("alice", "alice-pw", "p1")
    ident.store.run_in_transaction(lambda s: roles.revoke(s, uid, member, project_id=pid))
    with pytest.raises(AuthFailed):
        tokens.validate(ident.store, token)
    ident.store.run_in_transaction(lambda s: roles.grant(s, uid, member, project_id=pid))
    token, _ = ident.token("alice", "alice-pw", "p1")

    def disable(s):
        s.get(Project, pid).enabled = False

    ident.store.run_in_transaction(disable)
    with pytest.raises(AuthFailed):
        tokens.validate(ident.store, token)
    with pytest.raises(AuthFailed):
        ident.token("alice", "alice-pw", "p1")
    unscoped, _ = ident.token("alice", "alice-pw", scope="unscoped")
    ident.store.run_in_transaction(lambda s: users.delete_user(s, uid))
    with pytest.raises(AuthFailed):
        tokens.validate(ident.store, unscoped)
    assert _rows(ident.store) == []  # tokens go with their user


def test_password_change_revokes_the_users_tokens(ident):
    pid = ident.project("p1")
    uid = ident.user("alice", "alice-pw", pid)
    token, _ = ident.token("alice", "alice-pw", "p1")
    ident.store.run_in_transaction(lambda s: users.change_own_password(s, uid, "alice-pw", "new-pw"))
    with pytest.raises(AuthFailed):
        tokens.validate(ident.store, token)
    with pytest.raises(AuthFailed):
        ident.token("alice", "alice-pw", "p1")
    assert ident.token("alice", "new-pw", "p1")[1].user_id == uid
    with pytest.raises(AuthFailed):
        ident.store.run_in_transaction(lambda s: users.change_own_password(s, uid, "wrong", "other"))


def test_default_project_scope_and_no_role_scope(ident):
    pid = ident.project("p1")
    ident.project("p2")
    ident.user("alice", "alice-pw", pid)
    _, info = ident.token("alice", "alice-pw")  # no scope asked: the default project (Keystone)
    assert info.project_id == pid
    _, info = ident.token("alice", "alice-pw", scope="unscoped")
    assert info.scope == "unscoped" and info.project_id is None
    with pytest.raises(AuthFailed):
        ident.token("alice", "alice-pw", "p2")  # no role there
    with pytest.raises(AuthFailed):
        ident.token("alice", "alice-pw", scope={"system": {"all": True}})


def test_domain_scoped_token(ident):
    ident.user("dadmin", "dadmin-pw")
    uid = ident.store.run_in_transaction(lambda s: users.find_user(s, name="dadmin").id)
    with pytest.raises(AuthFailed):
        ident.token("dadmin", "dadmin-pw", scope={"domain": {"name": "Default"}})
    ident.store.run_in_transaction(lambda s: roles.grant(s, uid, roles.find_role(s, "admin").id, domain_id="default"))
    token, info = ident.token("dadmin", "dadmin-pw", scope={"domain": {"name": "Default"}})
    assert (info.scope, info.domain_id, info.domain_name, info.roles) == ("domain", "default", "Default", ["admin"])
    assert tokens.validate(ident.store, token).domain_id == "default"
