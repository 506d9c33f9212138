"""Network quotas, read-only: Neutron's default limits and what each project uses of them.

kvmfleet's Network API cannot create networks, ports or security groups (ports come with servers), so
nothing is enforced here; the numbers let `openstack quota show` answer truthfully.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

# Neutron's [quotas] defaults.
DEFAULTS = {"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50, "security_group": 10,
            "security_group_rule": 100, "rbac_policy": 10, "subnetpool": -1}


def limits() -> dict[str, int]:
    return dict(DEFAULTS)


def usage(session: Session, project_id: str) -> dict[str, int]:
    from kvmfleet.network import model, security_groups

    ports = len(model.list_ports(session, project_id))
    rules = len(security_groups.list_rules(session, project_id))
    groups = len(security_groups.list_groups(session, project_id))
    used = dict.fromkeys(DEFAULTS, 0)
    used.update(port=ports, security_group=groups, security_group_rule=rules)
    return used


def details(session: Session, project_id: str) -> dict[str, dict[str, Any]]:
    used = usage(session, project_id)
    return {k: {"limit": v, "used": used[k], "reserved": 0} for k, v in DEFAULTS.items()}
