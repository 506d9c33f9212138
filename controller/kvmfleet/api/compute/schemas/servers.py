"""Request schemas of /servers and /servers/{id}/action per microversion (nova/api/openstack/compute/
schemas/servers.py, console_output.py, admin_actions.py, pause_server.py, suspend_server.py).

Each ``*_schema(version)`` returns the schema Nova validates that request with at that microversion;
``index_query(version)`` the query-string schema of GET /servers and /servers/detail.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.microversion import APIVersion

_BDM_V2_ITEM = {
    "type": "object",
    "properties": {
        "virtual_name": {"type": "string", "maxLength": 255},
        "volume_id": t.UUID, "snapshot_id": t.UUID,
        "volume_size": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1, "maximum": 0x7FFFFFFF},
        "device_name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9._/-]*$"},
        "delete_on_termination": t.BOOLEAN,
        "no_device": {},
        "connection_info": {"type": "string", "maxLength": 16777215},
        "source_type": {"type": "string", "enum": ["volume", "image", "snapshot", "blank"]},
        "uuid": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9._-]*$"},
        "image_id": t.UUID,
        "destination_type": {"type": "string", "enum": ["local", "volume"]},
        "guest_format": {"type": "string", "maxLength": 255},
        "device_type": {"type": "string", "maxLength": 255},
        "disk_bus": {"type": "string", "maxLength": 255},
        "boot_index": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$"},
    },
    "additionalProperties": False,
}
_LEGACY_BDM_ITEM = {
    "type": "object",
    "properties": {k: _BDM_V2_ITEM["properties"][k] for k in (
        "virtual_name", "volume_id", "snapshot_id", "volume_size", "device_name", "delete_on_termination",
        "no_device", "connection_info")},
    "additionalProperties": False,
}
_HINTS = {
    "type": "object",
    "properties": {
        "group": {"oneOf": [{"type": "array", "items": t.UUID}, t.UUID]},
        "different_host": {"oneOf": [t.UUID, {"type": "array", "items": t.UUID}]},
        "same_host": {"type": ["string", "array"], "items": t.UUID},
        "query": {"type": ["string", "object"]},
        "target_cell": t.NAME,
        "different_cell": {"type": ["string", "array"], "items": {"type": "string"}},
        "build_near_host_ip": t.IP_ADDRESS,
        "cidr": {"type": "string", "pattern": "^/[0-9a-f.:]+$"},
    },
    "additionalProperties": True,  # Nova relaxed it: unknown hints are accepted
}


def _network_item(uuid_format: bool, tag: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "fixed_ip": t.IP_ADDRESS,
        "port": {"type": ["string", "null"], "format": "uuid"},
        "uuid": t.UUID if uuid_format else {"type": "string"},
    }
    if tag:
        props["tag"] = t.TAG
    return {"type": "object", "properties": props, "additionalProperties": False}


@cache
def _create(version: str) -> dict[str, Any]:
    v = APIVersion.parse(version)
    bdm_v2 = copy.deepcopy(_BDM_V2_ITEM)
    server: dict[str, Any] = {
        "name": t.NAME,
        "imageRef": t.IMAGE_ID_OR_EMPTY,
        "flavorRef": t.FLAVOR_REF,
        "adminPass": t.ADMIN_PASSWORD,
        "metadata": t.METADATA,
        "networks": {"type": "array", "items": _network_item(False, v == APIVersion(2, 32) or
                                                             v.matches("2.33", "2.36"))},
        "OS-DCF:diskConfig": t.DISK_CONFIG,
        "accessIPv4": t.ACCESS_IPV4,
        "accessIPv6": t.ACCESS_IPV6,
        "availability_zone": t.NAME,
        "block_device_mapping": {"type": "array", "items": _LEGACY_BDM_ITEM},
        "block_device_mapping_v2": {"type": "array", "items": bdm_v2},
        "config_drive": t.BOOLEAN,
        "key_name": t.NAME,
        "min_count": t.POSITIVE_INTEGER,
        "max_count": t.POSITIVE_INTEGER,
        "return_reservation_id": t.BOOLEAN,
        "security_groups": {"type": "array", "items": {"type": "object", "properties": {"name": t.NAME},
                                                       "additionalProperties": False}},
        "user_data": t.USER_DATA,
    }
    if not v.matches("2.57"):
        server["personality"] = t.PERSONALITY
    if v.matches("2.19"):
        server["description"] = t.DESCRIPTION
    if v == APIVersion(2, 32) or v.matches("2.42"):
        bdm_v2["properties"]["tag"] = t.TAG
    required = ["name", "flavorRef"]
    if v.matches("2.37"):
        required.append("networks")
        server["networks"] = {"oneOf": [
            {"type": "array", "items": _network_item(True, v.matches("2.42"))},
            {"type": "string", "enum": ["none", "auto"]}]}
    if v.matches("2.52"):
        server["tags"] = {"type": "array", "items": t.TAG, "maxItems": 50}
    if v.matches("2.63"):
        server["trusted_image_certificates"] = t.TRUSTED_CERTS
    if v.matches("2.67"):
        bdm_v2["properties"]["volume_type"] = {"type": ["string", "null"], "minLength": 0, "maxLength": 255}
    if v.matches("2.74"):
        server["host"] = t.FQDN
        server["hypervisor_hostname"] = t.FQDN
    return {
        "type": "object",
        "properties": {
            "server": {"type": "object", "properties": server, "required": required,
                       "additionalProperties": False},
            "os:scheduler_hints": _HINTS,
            "OS-SCH-HNT:scheduler_hints": _HINTS,
        },
        "required": ["server"],
        "additionalProperties": False,
    }


def create_schema(version: APIVersion) -> dict[str, Any]:
    return _create(str(version))


@cache
def _update(version: str) -> dict[str, Any]:
    v = APIVersion.parse(version)
    server: dict[str, Any] = {"name": t.NAME, "OS-DCF:diskConfig": t.DISK_CONFIG,
                              "accessIPv4": t.ACCESS_IPV4, "accessIPv6": t.ACCESS_IPV6}
    if v.matches("2.19"):
        server["description"] = t.DESCRIPTION
    return {"type": "object",
            "properties": {"server": {"type": "object", "properties": server, "additionalProperties": False}},
            "required": ["server"], "additionalProperties": False}


def update_schema(version: APIVersion) -> dict[str, Any]:
    return _update(str(version))


@cache
def _rebuild(version: str) -> dict[str, Any]:
    v = APIVersion.parse(version)
    props: dict[str, Any] = {
        "name": t.NAME, "imageRef": t.UUID, "adminPass": t.ADMIN_PASSWORD, "metadata": t.METADATA,
        "preserve_ephemeral": t.BOOLEAN, "OS-DCF:diskConfig": t.DISK_CONFIG,
        "accessIPv4": t.ACCESS_IPV4, "accessIPv6": t.ACCESS_IPV6,
    }
    if not v.matches("2.57"):
        props["personality"] = t.PERSONALITY
    if v.matches("2.19"):
        props["description"] = t.DESCRIPTION
    if v.matches("2.54"):
        props["key_name"] = t.NAME_OR_NONE
    if v.matches("2.57"):
        props["user_data"] = {"type": ["string", "null"], "format": "base64", "maxLength": 65535}
    if v.matches("2.63"):
        props["trusted_image_certificates"] = t.TRUSTED_CERTS
    return {"type": "object",
            "properties": {"rebuild": {"type": "object", "properties": props, "required": ["imageRef"],
                                       "additionalProperties": False}},
            "required": ["rebuild"], "additionalProperties": False}


def rebuild_schema(version: APIVersion) -> dict[str, Any]:
    return _rebuild(str(version))


def _action(name: str, inner: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": {name: inner if inner is not None else {}}, "required": [name],
            "additionalProperties": False}


RESIZE = _action("resize", {"type": "object", "properties": {"flavorRef": t.FLAVOR_REF,
                                                             "OS-DCF:diskConfig": t.DISK_CONFIG},
                            "required": ["flavorRef"], "additionalProperties": False})
REBOOT = _action("reboot", {"type": "object", "properties": {"type": {
    "type": "string", "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}},
    "required": ["type"], "additionalProperties": False})
CONSOLE_OUTPUT = _action("os-getConsoleOutput", {"type": "object", "properties": {"length": {
    "type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$", "minimum": -1}},
    "additionalProperties": False})
RESET_STATE = _action("os-resetState", {"type": "object", "properties": {"state": {
    "type": "string", "enum": ["active", "error"]}}, "required": ["state"], "additionalProperties": False})
# Actions whose value Nova does not check (TODO upstream: restrict to null).
SIMPLE_ACTIONS = {name: _action(name) for name in (
    "os-start", "os-stop", "pause", "unpause", "suspend", "resume", "confirmResize", "revertResize")}

# The body of POST /servers/{id}/action as documented in the served OpenAPI document: one action key.
ACTION_DOC = {"type": "object", "minProperties": 1, "maxProperties": 1, "properties": {
    "os-start": {}, "os-stop": {}, "pause": {}, "unpause": {}, "suspend": {}, "resume": {},
    "confirmResize": {}, "revertResize": {}, "reboot": REBOOT["properties"]["reboot"],
    "resize": RESIZE["properties"]["resize"], "rebuild": _rebuild("2.79")["properties"]["rebuild"],
    "os-getConsoleOutput": CONSOLE_OUTPUT["properties"]["os-getConsoleOutput"],
    "os-resetState": RESET_STATE["properties"]["os-resetState"]}}

# -- list query parameters (index_query*) --------------------------------------------------------

_Q = {"type": "array", "items": {"type": "string"}}
_QR = {"type": "array", "items": {"type": "string", "format": "regex"}}
_QDT = {"type": "array", "items": {"type": "string", "format": "date-time"}}
JOINED_TABLE_PARAMS = ("block_device_mapping", "services", "metadata", "system_metadata", "info_cache",
                       "security_groups", "pci_devices")
IGNORED_SORT_KEYS = (
    "architecture", "cell_name", "cleaned", "default_ephemeral_device", "default_swap_device", "deleted",
    "deleted_at", "disable_terminate", "ephemeral_gb", "ephemeral_key_uuid", "id", "key_data", "launched_on",
    "locked", "memory_mb", "os_type", "reservation_id", "root_gb", "shutdown_terminate", "user_data", "vcpus",
    "vm_mode")
SORT_KEYS = ("access_ip_v4", "access_ip_v6", "auto_disk_config", "availability_zone", "config_drive", "created_at",
             "display_description", "display_name", "host", "hostname", "image_ref", "instance_type_id",
             "kernel_id", "key_name", "launch_index", "launched_at", "locked_by", "node", "power_state",
             "progress", "project_id", "ramdisk_id", "root_device_name", "task_state", "terminated_at",
             "updated_at", "user_id", "uuid", "vm_state")


def ignored_sort_keys(version: APIVersion) -> tuple[str, ...]:
    """Sort keys accepted but ignored (Nova's SERVER_LIST_IGNORE_SORT_KEY*); from 2.75 they are 400s."""
    if version.matches("2.75"):
        return ()
    if version.matches("2.73"):
        return tuple(k for k in IGNORED_SORT_KEYS if k != "locked")
    return IGNORED_SORT_KEYS


@cache
def _index_query(version: str) -> dict[str, Any]:
    v = APIVersion.parse(version)
    regex = ("kernel_id", "ramdisk_id", "hostname", "key_name", "power_state", "node", "flavor", "reservation_id",
             "launched_at", "terminated_at", "availability_zone", "name", "display_name", "description",
             "display_description", "locked_by", "root_device_name", "config_drive", "access_ip_v4",
             "access_ip_v6", "auto_disk_config", "progress", "ip", "ip6", "created_at")
    plain = ("user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image", "vm_state", "task_state",
             "host", "uuid", "sort_dir", "all_tenants", "soft_deleted", "deleted", "status", *JOINED_TABLE_PARAMS)
    props: dict[str, Any] = {k: _QR for k in regex}
    props.update({k: _Q for k in plain})
    props["changes-since"] = _QDT
    props["limit"] = {"type": "array", "items": t.NON_NEGATIVE_INTEGER}
    props["marker"] = _Q
    sort_keys = list(SORT_KEYS) + list(ignored_sort_keys(v))
    if v.matches("2.73"):
        sort_keys.append("locked")
    props["sort_key"] = {"type": "array", "items": {"type": "string", "enum": sorted(set(sort_keys))}}
    if v.matches("2.26"):
        props.update({k: _QR for k in ("tags", "tags-any", "not-tags", "not-tags-any")})
    if v.matches("2.66"):
        props["changes-before"] = _QDT
    if v.matches("2.73"):
        props["locked"] = _Q
    return {"type": "object", "properties": props, "additionalProperties": not v.matches("2.75"),
            "patternProperties": {"^_": _Q}}


def index_query(version: APIVersion) -> dict[str, Any]:
    return _index_query(str(version))


def allowed_filters(version: APIVersion) -> tuple[str, ...]:
    """Filters a non-admin may use (Nova's _get_server_search_options); others are dropped silently."""
    opts: tuple[str, ...] = ("reservation_id", "name", "status", "image", "flavor", "ip", "changes-since",
                             "all_tenants")
    if version.matches("2.5"):
        opts += ("ip6",)
    if version.matches("2.26"):
        opts += ("tags", "tags-any", "not-tags", "not-tags-any")
    if version.matches("2.66"):
        opts += ("changes-before",)
    if version.matches("2.73"):
        opts += ("locked",)
    return opts


PAGING_SORTING = ("sort_key", "sort_dir", "limit", "marker")
