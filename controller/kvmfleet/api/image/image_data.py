"""/image/v2/images/{id}/file: upload (PUT, application/octet-stream, streamed) and download (GET)
(glance/api/v2/image_data.py).

Upload answers 204 once the data is stored, inspected with the image's declared disk format and the
image is active. A refused upload removes the data and leaves the image queued (Glance's _restore):
415 when the contents are not the declared format or are unsafe for a host (a qcow2 with a backing or
external data file, a "raw" image that is really qcow2, garbage), 413 over the size cap, 409 when the
image is not queued, 410 when it was deleted meanwhile. Download streams the file with Content-MD5;
an image without data answers 204 as Glance does.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from kvmfleet.api.context import RequestContext, get_store
from kvmfleet.api.faults import ApiError, BadRequest
from kvmfleet.api.image import PREFIX
from kvmfleet.api.image.images import CTX, viewer
from kvmfleet.images import data

router = APIRouter(prefix=PREFIX)

_OCTETS = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def _content_length(request: Request) -> int | None:
    text = request.headers.get("content-length")
    if text is None:
        return None
    if not text.isdigit():
        raise BadRequest("Invalid Content-Length header")
    return int(text)


@router.put("/images/{image_id}/file", status_code=204, summary="Upload image data", openapi_extra=_OCTETS)
async def upload(image_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/octet-stream":
        raise ApiError(f"Content-Type {content_type or '(none)'} is not supported: image data must be sent as "
                       "application/octet-stream", status=415)
    ctx.authorize("upload_image")
    await data.upload_stream(get_store(request), image_id, viewer(ctx), request.stream(),
                             size=_content_length(request))
    return Response(status_code=204)


@router.get("/images/{image_id}/file", summary="Download image data",
            responses={200: {"content": {"application/octet-stream": {}}}, 204: {"description": "no data"}})
def download(image_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize("download_image")
    found = data.open_download(get_store(request), image_id, viewer(ctx))
    if found is None:
        return Response(status_code=204)
    headers = {"Content-Length": str(found.size)}
    if found.checksum:
        headers["Content-MD5"] = found.checksum
    return StreamingResponse(found.chunks(), media_type="application/octet-stream", headers=headers)
