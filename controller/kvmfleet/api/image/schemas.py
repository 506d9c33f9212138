"""Glance v2's image schema (glance/api/v2/images.py get_base_properties, a PermissiveSchema: extra
properties are strings), as served at /v2/schemas/image(s) and used to validate create and patch
values. Only the disk and container formats kvmfleet runs are in the enums."""

from __future__ import annotations

import copy
from typing import Any

from kvmfleet.images.inspect import DISK_FORMATS
from kvmfleet.images.registry import CONTAINER_FORMATS, STATUSES, VISIBILITIES

_UUID = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"


def _nullable(kind: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": ["null", kind], "description": description, **extra}


BASE_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "description": "An identifier for the image", "pattern": _UUID},
    "name": _nullable("string", "Descriptive name for the image", maxLength=255),
    "status": {"type": "string", "readOnly": True, "description": "Status of the image", "enum": list(STATUSES)},
    "visibility": {"type": "string", "description": "Scope of image accessibility", "enum": list(VISIBILITIES)},
    "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
    "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
    "checksum": _nullable("string", "md5 hash of image contents.", readOnly=True, maxLength=32),
    "os_hash_algo": _nullable("string", "Algorithm to calculate the os_hash_value", readOnly=True, maxLength=64),
    "os_hash_value": _nullable("string", "Hexdigest of the image contents using the algorithm specified by the "
                               "os_hash_algo", readOnly=True, maxLength=128),
    "owner": _nullable("string", "Owner of the image", maxLength=255),
    "size": _nullable("integer", "Size of image file in bytes", readOnly=True),
    "virtual_size": _nullable("integer", "Virtual size of image in bytes", readOnly=True),
    "container_format": _nullable("string", "Format of the container", enum=[None, *CONTAINER_FORMATS]),
    "disk_format": _nullable("string", "Format of the disk", enum=[None, *DISK_FORMATS]),
    "created_at": {"type": "string", "readOnly": True, "description": "Date and time of image registration"},
    "updated_at": {"type": "string", "readOnly": True,
                   "description": "Date and time of the last image modification"},
    "tags": {"type": "array", "description": "List of strings related to the image",
             "items": {"type": "string", "maxLength": 255}},
    "direct_url": {"type": "string", "readOnly": True,
                   "description": "URL to access the image file kept in external store"},
    "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
    "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
    "self": {"type": "string", "readOnly": True, "description": "An image self url"},
    "file": {"type": "string", "readOnly": True, "description": "An image file url"},
    "stores": {"type": "string", "readOnly": True, "description": "Store in which image data resides."},
    "schema": {"type": "string", "readOnly": True, "description": "An image schema url"},
    "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external store",
                  "items": {"type": "object", "required": ["url", "metadata"],
                            "properties": {"url": {"type": "string", "maxLength": 255},
                                           "metadata": {"type": "object"}}}},
}

# Glance's etc/schema-image.json (the properties deployments ship), which kvmfleet honours as strings.
CUSTOM_PROPERTIES: dict[str, Any] = {
    "architecture": {"type": "string", "description": "Operating system architecture as specified in "
                     "https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"},
    "os_distro": {"type": "string", "description": "Common name of operating system distribution"},
    "os_version": {"type": "string", "description": "Operating system version as specified by the distributor."},
    "description": {"type": "string", "description": "A human-readable string describing this image."},
    "instance_uuid": {"type": "string", "description": "Metadata which can be used to record which instance "
                      "this image is associated with."},
}

LINKS = [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
         {"rel": "describedby", "href": "{schema}"}]


def image_schema() -> dict[str, Any]:
    """GET /v2/schemas/image (Glance's PermissiveSchema.raw())."""
    return {"name": "image", "properties": copy.deepcopy({**BASE_PROPERTIES, **CUSTOM_PROPERTIES}),
            "additionalProperties": {"type": "string"}, "links": LINKS}


def images_schema() -> dict[str, Any]:
    """GET /v2/schemas/images (Glance's CollectionSchema.raw())."""
    return {"name": "images",
            "properties": {"images": {"type": "array", "items": image_schema()}, "first": {"type": "string"},
                           "next": {"type": "string"}, "schema": {"type": "string"}},
            "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                      {"rel": "describedby", "href": "{schema}"}]}


# Validating requests: the image schema plus bounds Glance enforces past its schema (ids, sizes).
CREATE = image_schema()
CREATE["type"] = "object"
CREATE["properties"]["min_ram"].update(minimum=0, maximum=2 ** 31 - 1)
CREATE["properties"]["min_disk"].update(minimum=0, maximum=2 ** 31 - 1)
CREATE["properties"]["tags"].update(maxItems=128)
CREATE["properties"]["tags"]["items"]["minLength"] = 1
CREATE["properties"]["architecture"]["maxLength"] = 255

PATCH_CONTENT_TYPES = ("application/openstack-images-v2.1-json-patch", "application/openstack-images-v2.0-json-patch")

PATCH = {
    "type": "array",
    "items": {"type": "object", "properties": {
        "op": {"type": "string", "enum": ["add", "replace", "remove"]},
        "path": {"type": "string", "maxLength": 1024},
        "value": {},
    }},
}

DISALLOWED_ON_CREATE = ("direct_url", "self", "file", "schema", "stores")


def value_schema(key: str) -> dict[str, Any]:
    """The schema one PATCH value must match (a base attribute's, else a string property's)."""
    props = CREATE["properties"]
    return props.get(key) or {"type": "string"}
