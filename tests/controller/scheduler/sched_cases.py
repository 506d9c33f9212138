"""Loading the data-file cases: a case is one YAML file under cases/filters/ or cases/weighers/.

Keys: description, hosts (rows as HostState fields; ``host_defaults`` is merged into each), spec
(a RequestSpec as plain data), config (SchedulerConfig fields), and per kind:
filters: ``filter`` (one name) and ``passes`` (the names expected to pass, in host order);
weighers: ``weighers`` (names), optional ``multipliers``, ``order`` (expected ranking) and
``weights`` (expected total weight per host).

Every case runs on each scheduler path (``PATHS``): vectorised on a HostManager's list (columns kept
by the manager), vectorised on a plain list (columns built per call) and per host.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from kvmfleet.scheduler import HostManager, HostState, RequestSpec

CASES = Path(__file__).parent / "cases"


def case_files(kind: str) -> list[Path]:
    return sorted((CASES / kind).glob("*.yaml"))


def load_case(path: Path) -> dict:
    with path.open() as f:
        return yaml.safe_load(f)


def build_hosts(case: dict) -> list[HostState]:
    defaults = case.get("host_defaults") or {}
    return [HostState.from_dict({**defaults, **row}) for row in case["hosts"]]


def build_spec(case: dict) -> RequestSpec:
    return RequestSpec.from_dict(case["spec"])


PATHS = ["manager", "plain-list", "per-host"]


def hosts_for(path_kind, case):
    """The case's hosts as the scheduler gets them on each path."""
    if path_kind == "manager":  # a HostManager's list, ordered by name (the case files' names are)
        hosts = HostManager.from_rows([{**(case.get("host_defaults") or {}), **row} for row in case["hosts"]])
        listed = hosts.host_states()
        assert [h.name for h in listed] == [row["name"] for row in case["hosts"]]
        return listed
    return build_hosts(case)
