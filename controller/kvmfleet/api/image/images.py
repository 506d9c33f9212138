"""/image/v2/images, /images/{id}, /images/{id}/tags/{tag} and /schemas/image(s) (glance/api/v2/images.py,
image_tags.py, schemas.py).

Policies are Glance's defaults: readers list and show, members create and change their project's
images, admins everything (making an image public included). Another project's private image is a 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from kvmfleet.api import policy
from kvmfleet.api.compute.views.links import base_url
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import ApiError, BadRequest, Forbidden
from kvmfleet.api.image import PREFIX, schemas, views
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.images import listing, registry

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)
BODY = Depends(json_body)

policy.register({
    "get_images": policy.PROJECT_READER_OR_ADMIN,
    "get_image": policy.PROJECT_READER_OR_ADMIN,
    "add_image": policy.PROJECT_MEMBER_OR_ADMIN,
    "modify_image": policy.PROJECT_MEMBER_OR_ADMIN,
    "delete_image": policy.PROJECT_MEMBER_OR_ADMIN,
    "upload_image": policy.PROJECT_MEMBER_OR_ADMIN,
    "download_image": policy.PROJECT_READER_OR_ADMIN,
})


def viewer(ctx: RequestContext) -> registry.Viewer:
    return registry.Viewer(project_id=ctx.project_id, is_admin=ctx.is_admin)


@router.get("/schemas/image", summary="Show the image schema")
def image_schema(ctx: RequestContext = CTX) -> dict[str, Any]:
    return schemas.image_schema()


@router.get("/schemas/images", summary="Show the images schema")
def images_schema(ctx: RequestContext = CTX) -> dict[str, Any]:
    return schemas.images_schema()


@router.get("/images", summary="List images")
def list_images(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_images")
    query = list(request.query_params.multi_items())

    def run(session: Session) -> dict[str, Any]:
        items, next_marker = listing.list_images(session, viewer(ctx), query)
        return views.images(items, query, next_marker)

    return get_store(request).run_in_transaction(run)


@router.post("/images", status_code=201, summary="Create an image (queued: no data yet)",
             openapi_extra=openapi_body(schemas.CREATE))
def create_image(request: Request, response: Response, body: Any = BODY,
                 ctx: RequestContext = CTX) -> dict[str, Any]:
    if isinstance(body, dict):
        for key in schemas.DISALLOWED_ON_CREATE:
            if key in body:
                raise Forbidden(f"Attribute '{key}' is read-only.")
    validate(schemas.CREATE, body)
    ctx.authorize("add_image")
    made = get_store(request).run_in_transaction(
        lambda session: views.image(registry.create_image(session, viewer(ctx), body)))
    response.headers["Location"] = f"{base_url(request)}{PREFIX}/images/{made['id']}"
    return made


@router.get("/images/{image_id}", summary="Show an image")
def show_image(image_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_image")
    return get_store(request).run_in_transaction(
        lambda session: views.image(registry.get_image(session, image_id, viewer(ctx))))


def _pointer(path: Any) -> str:
    """Glance's limited JSON pointers: '/name' (one level; ~1 and ~0 escapes)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadRequest(f"Pointer `{path}` does not start with \"/\".")
    parts = path[1:].split("/")
    if len(parts) != 1 or not parts[0].strip():
        raise BadRequest(f"Invalid JSON pointer for this resource: '{path}'")
    token = parts[0]
    if "~" in token.replace("~0", "").replace("~1", ""):
        raise BadRequest(f"Pointer `{path}` contains \"~\" not part of a recognized escape sequence.")
    return token.replace("~1", "/").replace("~0", "~").strip()


def _changes(body: Any, draft: int) -> list[registry.Change]:
    if not isinstance(body, list):
        raise BadRequest("Request body must be a JSON array of operation objects.")
    changes = []
    for raw in body:
        if not isinstance(raw, dict):
            raise BadRequest("Operations must be JSON objects.")
        if draft == 4:  # {"replace": "/name", "value": ...}
            ops = [k for k in ("add", "remove", "replace") if k in raw]
            if len(ops) != 1:
                raise BadRequest('Operation objects must contain exactly one member named "add", "remove", or '
                                 '"replace".')
            op, path = ops[0], raw[ops[0]]
        else:
            op = raw.get("op")
            if op not in ("add", "remove", "replace"):
                raise BadRequest(f"Invalid operation: `{op}`. It must be one of the following: add, remove, "
                                 "replace.")
            if "path" not in raw:
                raise BadRequest("Unable to find 'path' in JSON Schema change")
            path = raw["path"]
        key = _pointer(path)
        if op != "remove" and "value" not in raw:
            raise BadRequest(f'Operation "{op}" requires a member named "value".')
        value = raw.get("value")
        registry.check_attribute_name(key)
        if op != "remove":
            validate(schemas.value_schema(key), value)
        changes.append(registry.Change(op, key, value))
    return changes


@router.patch("/images/{image_id}", summary="Update an image (JSON patch)",
              openapi_extra={"requestBody": {"required": True, "content": {
                  ct: {"schema": schemas.PATCH} for ct in schemas.PATCH_CONTENT_TYPES}}})
def update_image(image_id: str, request: Request, body: Any = BODY,
                 ctx: RequestContext = CTX) -> dict[str, Any]:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type not in schemas.PATCH_CONTENT_TYPES:
        raise ApiError(f"Image PATCH expects Content-Type one of: {', '.join(sorted(schemas.PATCH_CONTENT_TYPES))}",
                       status=415, headers={"Accept-Patch": ", ".join(sorted(schemas.PATCH_CONTENT_TYPES))})
    changes = _changes(body, 10 if content_type.endswith("v2.1-json-patch") else 4)
    ctx.authorize("modify_image")
    return get_store(request).run_in_transaction(
        lambda session: views.image(registry.update_image(session, image_id, viewer(ctx), changes)))


@router.delete("/images/{image_id}", status_code=204, summary="Delete an image and its data")
def delete_image(image_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize("delete_image")
    data = get_store(request).run_in_transaction(
        lambda session: registry.delete_image(session, image_id, viewer(ctx)))
    registry.remove_data(data)
    return Response(status_code=204)


@router.put("/images/{image_id}/tags/{tag}", status_code=204, summary="Add a tag to an image")
def add_tag(image_id: str, tag: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize("modify_image")
    get_store(request).run_in_transaction(
        lambda session: registry.add_tag(session, image_id, viewer(ctx), tag) and None)
    return Response(status_code=204)


@router.delete("/images/{image_id}/tags/{tag}", status_code=204, summary="Remove a tag from an image")
def delete_tag(image_id: str, tag: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize("modify_image")
    get_store(request).run_in_transaction(
        lambda session: registry.delete_tag(session, image_id, viewer(ctx), tag) and None)
    return Response(status_code=204)
