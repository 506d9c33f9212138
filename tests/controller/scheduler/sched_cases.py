"""Loading the data-file cases: a case is one YAML file under cases/filters/ or cases/weighers/.

Keys: description, hosts (rows as HostState fields; ``host_defaults`` is merged into each), spec
(a RequestSpec as plain data), config (SchedulerConfig fields), and per kind:
filters: ``filter`` (one name) and ``passes`` (the names expected to pass, in host order);
weighers: ``weighers`` (names), optional ``multipliers``, ``order`` (expected ranking) and
``weights`` (expected total weight per host).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from kvmfleet.scheduler import HostState, RequestSpec

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
