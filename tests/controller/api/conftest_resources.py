"""Helpers of the compute-resources tests (test_compute_resources*.py): users in two projects, raw calls,
the store's rows, Nova fault bodies."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
from conftest import Service

V = "/compute/v2.1"


def make_users(service: Service, pa: str, pb: str, alice: str, bob: str, reader: str) -> dict[str, str]:
    """alice (member of pa), bob (member of pb), reader (reader of pa) and their project-scoped tokens."""
    service.user(alice, pa, "member")
    service.user(bob, pb, "member")
    service.user(reader, pa, "reader")
    return {"admin": service.token(), "alice": service.token(alice, project=pa), "bob": service.token(bob, project=pb),
            "reader": service.token(reader, project=pa)}


def call(service: Service, token: str, method: str, path: str, version: str | None = None,
         **kw: Any) -> httpx.Response:
    with service.http(token, version) as c:
        return c.request(method, path, **kw)


def db(service: Service, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(service.state / "kvmfleet.db")
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def project_id(service: Service, name: str) -> str:
    return db(service, "SELECT id FROM projects WHERE name = ?", name)[0][0]


def fault(r: httpx.Response, status: int, name: str) -> str:
    """The message of a Nova fault body {name: {code, message}}, checking the status and the shape."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status
    return body[name]["message"]
