"""Request schemas of POST /servers/{id}/remote-consoles and the older console actions
(nova/api/openstack/compute/schemas/remote_consoles.py), Draft 4.

The enums are Nova's, so a protocol or type Nova knows but kvmfleet does not offer (spice, mks) passes
the schema and is refused by the handler with Nova's ConsoleTypeUnavailable (400), as Nova's driver does.
"""

from __future__ import annotations

from typing import Any

from kvmfleet.api.microversion import APIVersion


def _create(protocols: list[str], types: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"remote_console": {
            "type": "object",
            "properties": {"protocol": {"type": "string", "enum": protocols},
                           "type": {"type": "string", "enum": types}},
            "required": ["protocol", "type"],
            "additionalProperties": False,
        }},
        "required": ["remote_console"],
        "additionalProperties": False,
    }


CREATE_V26 = _create(["vnc", "spice", "serial"], ["novnc", "xvpvnc", "spice-html5", "serial"])
CREATE_V28 = _create(["vnc", "spice", "serial", "mks"], ["novnc", "xvpvnc", "spice-html5", "serial", "webmks"])


def create_schema(version: APIVersion) -> dict[str, Any]:
    return CREATE_V28 if version.matches("2.8") else CREATE_V26


def _action(name: str, types: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {
            "type": "object",
            "properties": {"type": {"type": "string", "enum": types}},
            "required": ["type"],
            "additionalProperties": False,
        }},
        "required": [name],
        "additionalProperties": False,
    }


GET_VNC_CONSOLE = _action("os-getVNCConsole", ["novnc", "xvpvnc"])
GET_SERIAL_CONSOLE = _action("os-getSerialConsole", ["serial"])
# the action name -> (its schema, the protocol it asks for)
ACTIONS = {"os-getVNCConsole": (GET_VNC_CONSOLE, "vnc"), "os-getSerialConsole": (GET_SERIAL_CONSOLE, "serial")}
DOC_PROPERTIES = {name: schema["properties"][name] for name, (schema, _protocol) in ACTIONS.items()}
