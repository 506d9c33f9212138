"""/network/v2.0/extensions: the Neutron extensions whose attributes and resources kvmfleet serves (and
only those: clients test for an extension before they use what it adds)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kvmfleet.api.context import RequestContext, context
from kvmfleet.api.faults import NotFoundError
from kvmfleet.api.network import PREFIX
from kvmfleet.api.network.query import select_fields

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)

# (alias, name, description, updated) as neutron-lib's api definitions (and neutron/extensions) give them
EXTENSIONS = (
    ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled.",
     "2016-09-09T09:09:09-09:09"),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource.",
     "2013-01-14T10:00:00-00:00"),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks",
     "2012-09-07T10:00:00-00:00"),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource.", "2015-03-25T10:00:00-00:00"),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application",
     "2014-02-03T10:00:00-00:00"),
    ("net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource.",
     "2017-07-12T00:00:00-00:00"),
    ("security-group", "security-group", "The security groups extension.", "2012-10-05T10:00:00-00:00"),
    ("port-security", "Port Security", "Provides port security", "2012-07-23T10:00:00-00:00"),
    ("stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not",
     "2019-11-26T09:00:00-00:00"),
    ("quotas", "Quota management support", "Expose functions for quotas management per project",
     "2012-07-29T10:00:00-00:00"),
    ("quota_details", "Quota details management support", ("Expose functions for quotas usage statistics per "
     "project"), "2017-02-10T10:00:00-00:00"),
    ("standard-attr-description", "standard-attr-description", ("Extension to add descriptions to standard "
     "attributes"), "2016-02-10T10:00:00-00:00"),
    ("standard-attr-timestamp", "Resource timestamps", ("Adds created_at and updated_at fields to all Neutron "
     "resources that have Neutron standard attributes."), "2016-09-12T10:00:00-00:00"),
    ("standard-attr-revisions", "Resource revision numbers", ("This extension will display the revision number "
     "of neutron resources."), "2016-04-11T10:00:00-00:00"),
)


def _view(alias: str, name: str, description: str, updated: str) -> dict[str, Any]:
    return {"alias": alias, "name": name, "description": description, "updated": updated, "links": []}


@router.get("/extensions", summary="List the extensions kvmfleet honours")
def list_extensions(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    return {"extensions": [select_fields(request, _view(*e)) for e in EXTENSIONS]}


@router.get("/extensions/{alias}", summary="Show an extension")
def show_extension(alias: str, ctx: RequestContext = CTX) -> dict[str, Any]:
    for ext in EXTENSIONS:
        if ext[0] == alias:
            return {"extension": _view(*ext)}
    raise NotFoundError(f"Extension with alias {alias} does not exist", kind="ExtensionNotFound")
