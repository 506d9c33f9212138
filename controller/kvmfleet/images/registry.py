"""The image registry: Glance v2's images, their data a file on the controller (<state dir>/images/).

One set of functions serves the CLI (`kvmfleet image register/list/show/delete`, as the operator: an
admin Viewer) and the Image API (kvmfleet.api.image, as the token's project). Glance's rules:

- visibility: public (everyone; only an admin makes an image public), community (everyone may use it by
  id; listed only when asked for), shared and private (the owning project only: kvmfleet has no image
  members, so shared is private). An image a project cannot see is "not found", never "forbidden";
  one it can see but does not own is "forbidden" to change. Admins see and change everything.
- status: queued (no data) -> saving (upload running) -> active; a refused upload goes back to queued.
  ``deleted`` is terminal: a deleted image that servers still name keeps its row (so they still say
  which image they came from, as Nova shows a deleted image's id) but not its file, and no lookup by
  name or listing finds it; an image nothing names is removed outright.
- names are optional display names and need not be unique; extra properties are strings (architecture,
  hw_*, os_distro, ...) kept in ``properties``; ``architecture`` also sets the arch the scheduler
  matches hosts against.

Data: kvmfleet.images.data (upload, download); inspection: kvmfleet.images.inspect.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from kvmfleet.images.errors import ImageForbidden, ImageTooLarge
from kvmfleet.images.inspect import DISK_FORMATS
from kvmfleet.store import api as store_api
from kvmfleet.store.errors import AlreadyExists, Conflict, InUse, InvalidInput, NotFound
from kvmfleet.store.models import Image, Instance, Project, utcnow

FORMATS = DISK_FORMATS  # the CLI's name for them
CONTAINER_FORMATS = ("bare",)
VISIBILITIES = ("public", "community", "shared", "private")
STATUSES = ("queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete",
            "deactivated")
ARCHES = ("x86_64", "aarch64", "i686", "ppc64le", "s390x")
# Nova's canonical names (nova.objects.fields.Architecture.canonicalize) for what images commonly say.
ARCH_ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "x64": "x86_64", "i386": "i686", "i486": "i686",
                "i586": "i686", "x86": "i686", "ia32": "i686", "arm64": "aarch64", "ppc64el": "ppc64le"}
DEFAULT_SIZE_CAP = 10 * 1024 ** 3  # bytes; api.image_size_cap (Glance's image_size_cap)
MAX_PROPERTIES = 128  # Glance's image_property_quota
MAX_TAGS = 128  # Glance's image_tag_quota

# Glance's attribute classes (glance/api/v2/images.py RequestDeserializer).
BASE_ATTRIBUTES = ("checksum", "created_at", "container_format", "disk_format", "id", "min_disk", "min_ram",
                   "name", "size", "virtual_size", "status", "tags", "owner", "updated_at", "visibility",
                   "protected", "os_hidden", "os_hash_algo", "os_hash_value")
READONLY_ATTRIBUTES = ("created_at", "updated_at", "status", "checksum", "size", "virtual_size", "direct_url",
                       "self", "file", "schema", "id", "os_hash_algo", "os_hash_value", "stores", "locations")
RESERVED_ATTRIBUTES = ("location", "deleted", "deleted_at")
RESERVED_NAMESPACE = "os_glance"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Viewer:
    """Who asks: the token's project and whether the token has the admin role. The CLI is the
    operator on the controller: ``Viewer.operator()`` (an admin without a project)."""

    project_id: str | None
    is_admin: bool = False

    @classmethod
    def operator(cls) -> Viewer:
        return cls(project_id=None, is_admin=True)


def images_dir() -> Path:
    from kvmfleet import paths

    return paths.state_dir() / "images"


def size_cap() -> int:
    """The largest image data accepted, in bytes (api.image_size_cap, or $KVMFLEET_IMAGE_SIZE_CAP)."""
    from kvmfleet.config import get_settings

    env = os.environ.get("KVMFLEET_IMAGE_SIZE_CAP")
    if env and env.isdigit():
        return int(env)
    return int(getattr(get_settings().api, "image_size_cap", DEFAULT_SIZE_CAP))


def canonical_arch(value: Any) -> str:
    text = str(value).strip().lower()
    text = ARCH_ALIASES.get(text, text)
    if text not in ARCHES:
        raise InvalidInput(f"architecture {value!r} is not supported (allowed: {', '.join(ARCHES)})")
    return text


# -- who sees and changes what --------------------------------------------------------------------


def can_see(image: Image, viewer: Viewer) -> bool:
    if image.status == "deleted":
        return False
    if viewer.is_admin or image.visibility in ("public", "community"):
        return True
    return image.project_id is not None and image.project_id == viewer.project_id


def check_owner(image: Image, viewer: Viewer, action: str = "modify_image") -> None:
    if viewer.is_admin or (image.project_id is not None and image.project_id == viewer.project_id):
        return
    raise ImageForbidden(f"You are not authorized to complete {action} action.")


def get_image(session: Session, image_id: str, viewer: Viewer, for_update: bool = False) -> Image:
    """The image ``image_id`` as ``viewer`` may see it; NotFound otherwise (never a hint it exists)."""
    image = None
    if isinstance(image_id, str) and UUID_RE.match(image_id):
        query = select(Image).where(Image.id == image_id)
        image = session.scalars(query.with_for_update() if for_update else query).first()
    if image is None or not can_see(image, viewer):
        raise NotFound(f"No image found with ID {image_id}", image=image_id)
    return image


def find_image(session: Session, key: str, viewer: Viewer) -> Image:
    """By id, or by name among the images ``viewer`` sees (the CLI; servers name images this way)."""
    if UUID_RE.match(key or ""):
        return get_image(session, key, viewer)
    rows = [i for i in session.scalars(select(Image).where(Image.name == key, Image.status != "deleted")).all()
            if can_see(i, viewer)]
    if not rows:
        raise NotFound(f"image {key} not found", image=key)
    if len(rows) > 1:
        raise InvalidInput(f"image name {key} is ambiguous ({', '.join(sorted(r.id for r in rows))}): use the id")
    return rows[0]


# -- attribute values -----------------------------------------------------------------------------


def check_attribute_name(key: str, creating: bool = False) -> None:
    """Glance's 403s for attributes nobody may set, and the 400 for an overlong property name."""
    if key in READONLY_ATTRIBUTES and not (creating and key == "id"):
        raise ImageForbidden(f"Attribute '{key}' is read-only.")
    if key in RESERVED_ATTRIBUTES or key.startswith(RESERVED_NAMESPACE):
        raise ImageForbidden(f"Attribute '{key}' is reserved.")
    if len(key) > 255:
        raise InvalidInput("Custom property should not be greater than 255 characters.")


def _set_visibility(image: Image, value: str, viewer: Viewer) -> None:
    if value not in VISIBILITIES:
        raise InvalidInput(f"Invalid visibility value: {value}")
    if value == "public" and not viewer.is_admin and image.visibility != "public":
        raise ImageForbidden("You are not authorized to complete publicize_image action.")
    image.visibility = value


def _set_format(image: Image, key: str, value: Any) -> None:
    allowed = DISK_FORMATS if key == "disk_format" else CONTAINER_FORMATS
    if value is not None and value not in allowed:
        raise InvalidInput(f"Invalid value '{value}' for {key}: allowed are {', '.join(allowed)}")
    if image.status != "queued" and (getattr(image, key) or None) != value:
        raise ImageForbidden(f"Attribute {key} can be only replaced for a queued image.")
    setattr(image, key, value or "")  # "" is Glance's null (the columns are NOT NULL)


def _non_negative_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 31:
        raise InvalidInput(f"Invalid value for {key}: a non-negative integer is required")
    return value


def _owner(session: Session, value: Any) -> str | None:
    """An owner an admin names: a project of this cloud (images belong to projects here), or none."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput("Invalid value for owner: a project id is required")
    if session.get(Project, value) is None:
        raise InvalidInput(f"Invalid value for owner: no project has the id {value!r}")
    return value


def set_attribute(session: Session, image: Image, key: str, value: Any, viewer: Viewer) -> None:
    """Set one base attribute or extra property (PATCH add/replace, or create)."""
    if key == "name":
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise InvalidInput("Invalid value for name: a string of at most 255 characters or null")
        if value is not None and any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
            # the name goes into each server's libvirt metadata (XML): no control characters
            raise InvalidInput("Invalid value for name: control characters are not allowed")
        image.name = value
    elif key == "visibility":
        _set_visibility(image, value, viewer)
    elif key in ("protected", "os_hidden"):
        if not isinstance(value, bool):
            raise InvalidInput(f"Invalid value for {key}: a boolean is required")
        setattr(image, key, value)
    elif key in ("min_ram", "min_disk"):
        setattr(image, key, _non_negative_int(key, value))
    elif key in ("disk_format", "container_format"):
        _set_format(image, key, value)
    elif key == "tags":
        set_tags(image, value)
    elif key == "owner":
        if not viewer.is_admin:
            raise ImageForbidden("Owner can't be updated by non admin.")
        image.project_id = _owner(session, value)
    else:
        check_attribute_name(key)
        if not isinstance(value, str):
            raise InvalidInput(f"Invalid value for property {key}: a string is required")
        props = dict(image.properties or {})
        if key not in props and len(props) >= MAX_PROPERTIES:
            raise ImageTooLarge(f"Maximum number of image properties ({MAX_PROPERTIES}) exceeded")
        if key == "architecture":
            image.arch = canonical_arch(value)
        props[key] = value
        image.properties = props


def remove_property(image: Image, key: str) -> None:
    if key in BASE_ATTRIBUTES:
        raise ImageForbidden(f"Property {key} may not be removed.")
    check_attribute_name(key)
    props = dict(image.properties or {})
    if key not in props:
        raise Conflict(f"Property {key} does not exist.", image=image.id)  # Glance answers 409
    del props[key]
    if key == "architecture":
        image.arch = "x86_64"  # the scheduler's default
    image.properties = props


def set_tags(image: Image, tags: Any) -> None:
    if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 255 for t in tags):
        raise InvalidInput("Invalid value for tags: a list of strings of 1-255 characters is required")
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise ImageTooLarge(f"Maximum number of image tags ({MAX_TAGS}) exceeded")
    image.tags = unique


# -- create, update, delete -----------------------------------------------------------------------


def create_image(session: Session, viewer: Viewer, attributes: dict[str, Any]) -> Image:
    """A queued image (no data yet) owned by the viewer's project (an admin may name another owner)."""
    attrs = dict(attributes)
    for key in attrs:
        check_attribute_name(key, creating=True)
    image_id = attrs.pop("id", None)
    if image_id is not None:
        if not isinstance(image_id, str) or not UUID_RE.match(image_id):
            raise InvalidInput(f"Invalid image id {image_id!r}: a UUID is required")
        if session.get(Image, image_id) is not None:
            raise AlreadyExists(f"Image with identifier {image_id} already exists!", image=image_id)
    owner = attrs.pop("owner", viewer.project_id)
    if owner != viewer.project_id and not viewer.is_admin:
        raise ImageForbidden(f"You are not permitted to create images owned by '{owner}'.")
    owner = _owner(session, owner)
    image = Image(**({"id": image_id} if image_id else {}), name=None, file_path="", sha256="", size=0,
                  disk_format="", container_format="", status="queued", visibility="shared", protected=False,
                  os_hidden=False, tags=[], properties={}, arch="x86_64", min_ram=0, min_disk=0,
                  project_id=owner)
    for key, value in attrs.items():
        if key == "visibility":
            _set_visibility(image, value, viewer)
        else:
            set_attribute(session, image, key, value, viewer)
    session.add(image)
    session.flush()
    return image


@dataclass(frozen=True)
class Change:
    """One JSON-patch operation on an image: op add/replace/remove, path the attribute name."""

    op: str
    path: str
    value: Any = None


def update_image(session: Session, image_id: str, viewer: Viewer, changes: list[Change]) -> Image:
    """Apply Glance's PATCH operations, all or nothing (the caller's transaction)."""
    image = get_image(session, image_id, viewer, for_update=True)
    check_owner(image, viewer)
    for change in changes:
        if change.path in READONLY_ATTRIBUTES or change.path in RESERVED_ATTRIBUTES:
            check_attribute_name(change.path)
        if change.op == "remove":
            remove_property(image, change.path)
        elif change.op == "replace" and change.path not in BASE_ATTRIBUTES \
                and change.path not in (image.properties or {}):
            raise Conflict(f"Property {change.path} does not exist.", image=image.id)  # Glance: 409
        elif change.op in ("add", "replace"):
            set_attribute(session, image, change.path, change.value, viewer)
        else:
            raise InvalidInput(f"Invalid operation: `{change.op}`. It must be one of the following: add, remove, "
                               "replace.")
    if changes:
        image.updated_at = utcnow()
    session.flush()
    return image


def add_tag(session: Session, image_id: str, viewer: Viewer, tag: str) -> Image:
    image = get_image(session, image_id, viewer, for_update=True)
    check_owner(image, viewer)
    set_tags(image, [*list(image.tags or []), tag])
    image.updated_at = utcnow()
    return image


def delete_tag(session: Session, image_id: str, viewer: Viewer, tag: str) -> Image:
    image = get_image(session, image_id, viewer, for_update=True)
    check_owner(image, viewer)
    if tag not in (image.tags or []):
        raise NotFound(f"Tag {tag} not found", image=image_id)
    image.tags = [t for t in image.tags if t != tag]
    image.updated_at = utcnow()
    return image


def servers_using(session: Session, image: Image) -> list[str]:
    return list(session.scalars(select(Instance.name).where(Instance.image_id == image.id,
                                                            Instance.deleted_at.is_(None))).all())


def delete_image(session: Session, image_id: str, viewer: Viewer, refuse_in_use: bool = False) -> Path | None:
    """Delete an image (Glance: allowed while servers use it; protected ones refuse). ``refuse_in_use``
    (the CLI's default) refuses while a live server was built from it. Returns the data file to remove
    once the transaction has committed (``remove_data``), so a rolled back delete keeps its data."""
    image = get_image(session, image_id, viewer, for_update=True)
    check_owner(image, viewer, "delete_image")
    if image.protected:
        raise ImageForbidden(f"Image {image.id} is protected and cannot be deleted.")
    users = servers_using(session, image)
    if users and refuse_in_use:
        raise InUse(f"image {image.name or image.id} is used by server(s) {', '.join(sorted(users)[:5])}: "
                    "rebuild or delete them (or delete it through the Image API, as Glance allows)")
    data = Path(image.file_path) if image.file_path else None
    if session.scalar(select(exists().where(Instance.image_id == image.id))):
        image.status = "deleted"  # servers keep naming it; lookups by name and listings skip it
        image.file_path = ""
        image.updated_at = utcnow()
    else:
        session.delete(image)
    session.flush()
    return data if data is not None and data.parent == images_dir() else None


def remove_data(path: Path | None) -> None:
    """Remove a deleted image's data file (after the delete committed)."""
    if path is not None:
        path.unlink(missing_ok=True)


# -- the CLI --------------------------------------------------------------------------------------


def register(store: Any, name: str, file: str, arch: str = "x86_64", disk_format: str = "qcow2",
             min_ram: int = 0, min_disk: int = 0, visibility: str = "public", project: str | None = None,
             properties: dict[str, str] | None = None) -> Image:
    """`kvmfleet image register`: create the image and upload the file through the same checks as the
    Image API (inspected with its declared format; sha256, md5 and sha512 recorded). The file is copied
    into the registry, so later changes to it never change the image. Names here are host-safe and
    unique among live images, because the CLI finds images by name."""
    from kvmfleet.compute.common import validate_name
    from kvmfleet.images import data

    validate_name(name, "image name")
    if disk_format not in DISK_FORMATS:
        raise InvalidInput(f"invalid disk format {disk_format!r} (allowed: {', '.join(DISK_FORMATS)})")
    arch = canonical_arch(arch)
    path = Path(file).expanduser().resolve()
    if not path.is_file():
        raise InvalidInput(f"image file not found: {file}")
    viewer = Viewer.operator()

    def create(session: Session) -> str:
        if session.scalars(select(Image).where(Image.name == name, Image.status != "deleted")).first():
            raise AlreadyExists(f"image {name} already exists", image=name)
        owner = store_api.get_project(session, project).id if project else None
        attrs: dict[str, Any] = {"name": name, "disk_format": disk_format, "container_format": "bare",
                                 "min_ram": min_ram, "min_disk": min_disk, "visibility": visibility,
                                 "owner": owner, **(properties or {}), "architecture": arch}
        return create_image(session, viewer, attrs).id

    image_id = store.run_in_transaction(create)
    try:
        data.upload_file(store, image_id, path, viewer)
    except BaseException:
        store.run_in_transaction(lambda s: _forget(s, image_id))
        raise
    return store.run_in_transaction(lambda s: _detached(s, image_id))


def _forget(session: Session, image_id: str) -> None:
    image = session.get(Image, image_id)
    if image is not None:
        session.delete(image)


def _detached(session: Session, image_id: str) -> Image:
    image = session.get(Image, image_id)
    session.expunge(image)
    return image


def remove(store: Any, key: str) -> None:
    """`kvmfleet image delete`: by id or name; refused while a live server was built from it."""

    def run(session: Session) -> Path | None:
        image = find_image(session, key, Viewer.operator())
        return delete_image(session, image.id, Viewer.operator(), refuse_in_use=True)

    remove_data(store.run_in_transaction(run))


def image_dict(image: Image) -> dict[str, Any]:
    return {"id": image.id, "name": image.name, "status": image.status, "visibility": image.visibility,
            "owner": image.project_id, "disk_format": image.disk_format, "arch": image.arch,
            "size": image.size if image.file_path else None, "virtual_size": image.virtual_size,
            "sha256": image.sha256 or None, "file": image.file_path or None, "min_ram": image.min_ram,
            "min_disk": image.min_disk, "protected": image.protected, "properties": dict(image.properties or {}),
            "created_at": image.created_at.isoformat() if image.created_at else None}


def list_images(session: Session) -> list[Image]:
    """Every live image (the operator's view), by name."""
    rows = session.scalars(select(Image).where(Image.status != "deleted")).all()
    return sorted(rows, key=lambda i: (i.name or "", i.created_at))
