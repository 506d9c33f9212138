"""Neutron's errors (neutron_lib.exceptions), each a store error of the matching kind that names its HTTP
status and Neutron's ``type``, so the API renders ``{"NeutronError": {"type": ..., "message": ...}}`` with
Neutron's code (kvmfleet.api.faults reads ``http_status`` and ``kind``) and the CLI prints the message."""

from __future__ import annotations

from typing import Any

from kvmfleet.quota import OverQuota as _OverQuota
from kvmfleet.store.errors import Conflict, InUse, InvalidInput, NotFound, StoreError


class NeutronNotFound(NotFound):
    http_status = 404
    kind = "NotFound"


class NetworkNotFound(NeutronNotFound):
    kind = "NetworkNotFound"

    def __init__(self, network_id: str) -> None:
        super().__init__(f"Network {network_id} could not be found.", network=network_id)


class SubnetNotFound(NeutronNotFound):
    kind = "SubnetNotFound"

    def __init__(self, subnet_id: str) -> None:
        super().__init__(f"Subnet {subnet_id} could not be found.", subnet=subnet_id)


class PortNotFound(NeutronNotFound):
    kind = "PortNotFound"

    def __init__(self, port_id: str) -> None:
        super().__init__(f"Port {port_id} could not be found.", port=port_id)


class SecurityGroupNotFound(NeutronNotFound):
    kind = "SecurityGroupNotFound"

    def __init__(self, group_id: str) -> None:
        super().__init__(f"Security group {group_id} does not exist", security_group=group_id)


class SecurityGroupRuleNotFound(NeutronNotFound):
    kind = "SecurityGroupRuleNotFound"

    def __init__(self, rule_id: str) -> None:
        super().__init__(f"Security group rule {rule_id} does not exist", security_group_rule=rule_id)


class BadInput(InvalidInput):
    """Neutron's InvalidInput: 400 "Invalid input for operation: ..."."""

    http_status = 400
    kind = "InvalidInput"

    def __init__(self, message: str, kind: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        if kind:
            self.kind = kind


def invalid(message: str, kind: str | None = None) -> BadInput:
    return BadInput(f"Invalid input for operation: {message}", kind=kind)


class NeutronConflict(Conflict):
    """409 with Neutron's type (NetworkInUse, PortInUse, IpAddressGenerationFailure, ...)."""

    http_status = 409
    kind = "Conflict"

    def __init__(self, message: str, kind: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        if kind:
            self.kind = kind


class NeutronInUse(InUse):
    http_status = 409
    kind = "InUse"

    def __init__(self, message: str, kind: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        if kind:
            self.kind = kind


class IpAddressGenerationFailure(NeutronConflict):
    kind = "IpAddressGenerationFailure"

    def __init__(self, network_id: str) -> None:
        super().__init__(f"No more IP addresses available on network {network_id}.", network=network_id)


class PolicyNotAuthorized(StoreError):
    """403: an attribute only an admin (or the network's owner) may set."""

    http_status = 403
    kind = "PolicyNotAuthorized"

    def __init__(self, rule: str) -> None:
        super().__init__(f"({'rule:' + rule}) is disallowed by policy", rule=rule)


class ReadOnly(StoreError):
    """403: the provider network ``default`` and its ports come from the hosts and the servers."""

    http_status = 403
    kind = "PolicyNotAuthorized"


class OverQuota(_OverQuota):
    """Neutron's OverQuota: 409 "Quota exceeded for resources: ['port']."."""

    http_status = 409
    kind = "OverQuota"

    def __init__(self, project: str, over: list[dict[str, Any]]) -> None:
        super().__init__(project, over)
        self.msg = f"Quota exceeded for resources: {[o['resource'] for o in over]}."
