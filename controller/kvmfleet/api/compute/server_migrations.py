"""Compute API: a server's live migrations (nova/api/openstack/compute/server_migrations.py), admins only.

    GET    /servers/{id}/migrations                    (2.23) its live migrations in progress
    GET    /servers/{id}/migrations/{id}               (2.23) one of them
    DELETE /servers/{id}/migrations/{id}               (2.24) abort it: 202 (queued or preparing ones too
                                                       from 2.65)
    POST   /servers/{id}/migrations/{id}/action        (2.22) force_complete: refused with 400, see below

Below its microversion a route is 404, as Nova's. The server is looked up first (another project's is
404), then the rule is checked, as Nova does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.schemas import server_migrations as schemas
from kvmfleet.api.compute.schemas.types import FORMATS
from kvmfleet.api.compute.server_actions import conflict
from kvmfleet.api.compute.servers import find
from kvmfleet.api.compute.views import migrations as views
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest, NotFoundError
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.compute import migrations
from kvmfleet.compute.errors import InvalidInstanceState
from kvmfleet.store.errors import NotFound
from kvmfleet.store.models import Migration

router = APIRouter(prefix=PREFIX, tags=["server migrations"])
CTX = Depends(context)  # the dependencies, once (ruff B008)
BODY = Depends(json_body)

RULE = "os_compute_api:servers:migrations:%s"
policy.register({RULE % "index": policy.ADMIN, RULE % "show": policy.ADMIN, RULE % "delete": policy.ADMIN,
                 RULE % "force_complete": policy.ADMIN})
NOT_FOUND = "The resource could not be found."
MAX_ID = 2**31 - 1  # the migrations table's integer id: a larger one would fail in the store, not miss


def _too_large(migration_id: str) -> bool:
    try:
        return abs(int(migration_id)) > MAX_ID
    except ValueError:
        return False  # not an integer: the store's lookup finds nothing


def _lookup(session: Any, instance_uuid: str, migration_id: str, live_in_progress: bool) -> Migration | None:
    """The server's migration (migrations.get_for_instance), None when there is none by that id."""
    if _too_large(migration_id):
        return None
    try:
        return migrations.get_for_instance(session, instance_uuid, migration_id, live_in_progress=live_in_progress)
    except NotFound:
        return None


def _since(ctx: RequestContext, version: str) -> None:
    if not ctx.microversion.matches(version):
        raise NotFoundError(NOT_FOUND)


@router.get("/servers/{server_id}/migrations", summary="List a server's live migrations in progress (admin, 2.23)")
def index(server_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    _since(ctx, "2.23")
    with get_store(request).read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "index")
        rows = migrations.in_progress(session, inst.uuid, migrations.LIVE)
        return {"migrations": [views.server_migration(r, ctx.microversion) for r in rows]}


@router.get("/servers/{server_id}/migrations/{migration_id}",
            summary="Show a server's live migration in progress (admin, 2.23)")
def show(server_id: str, migration_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    _since(ctx, "2.23")
    with get_store(request).read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "show")
        row = _lookup(session, inst.uuid, migration_id, live_in_progress=False)
        if row is None:
            raise NotFoundError(f"In-progress live migration {migration_id} is not found for server {server_id}.")
        if row.migration_type != migrations.LIVE:
            raise NotFoundError(f"Migration {migration_id} for server {server_id} is not live-migration.")
        if not views.in_progress(row):
            raise NotFoundError(f"Live migration {migration_id} for server {server_id} is not in progress.")
        return {"migration": views.server_migration(row, ctx.microversion)}


@router.delete("/servers/{server_id}/migrations/{migration_id}", status_code=202,
               summary="Abort a server's live migration (admin, 2.24)")
def delete(server_id: str, migration_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    _since(ctx, "2.24")
    store = get_store(request)
    with store.read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "delete")
    if _too_large(migration_id):
        raise NotFoundError(f"Migration {migration_id} not found for instance {server_id}.")
    try:
        migrations.abort(store, inst.uuid, migration_id, allow_queued=ctx.microversion.matches("2.65"))
    except InvalidInstanceState as exc:
        raise conflict(exc, "abort live migration", server_id) from exc
    except NotFound as exc:
        if "migration" not in exc.details:
            raise
        raise NotFoundError(f"Migration {migration_id} not found for instance {server_id}.") from exc
    return Response(status_code=202)


@router.post("/servers/{server_id}/migrations/{migration_id}/action",
             summary="Force a live migration to complete (2.22): not supported, 400",
             openapi_extra=openapi_body(schemas.FORCE_COMPLETE))
def action(server_id: str, migration_id: str, request: Request, body: Any = BODY,
           ctx: RequestContext = CTX) -> Response:
    """Nova's force_complete pauses the guest (or switches to post-copy) so that the migration ends. kvmfleet
    migrates pre-copy only and never pauses a guest to finish: the request is refused, honestly, with 400
    (one of the answers Nova gives a force_complete it cannot do), and the migration goes on untouched."""
    _since(ctx, "2.22")
    validate(schemas.FORCE_COMPLETE, body, FORMATS)
    with get_store(request).read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "force_complete")
        if _lookup(session, inst.uuid, migration_id, live_in_progress=True) is None:
            raise BadRequest(f"Migration {migration_id} not found for instance {server_id}.")
    raise BadRequest(f"Force-completing a live migration is not supported by kvmfleet (it migrates pre-copy only, "
                     f"never pausing the guest or switching to post-copy): migration {migration_id} goes on; "
                     f"abort it with DELETE /servers/{server_id}/migrations/{migration_id}.")
