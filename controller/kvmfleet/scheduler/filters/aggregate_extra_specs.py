"""AggregateInstanceExtraSpecsFilter: flavor extra specs must match the host's aggregate metadata.

Nova semantics: a key scoped ``aggregate_instance_extra_specs:KEY`` or an unscoped ``KEY`` (no colon)
is checked; keys in any other scope (``hw:cpu_policy``, ``quota:...``) are ignored. The host passes
when, for every checked key, some aggregate of the host has that key with a value matching the
requirement under Nova's extra-spec operators (``match`` below). A flavor without extra specs
passes everywhere.
"""

from __future__ import annotations

import operator

import numpy as np

from kvmfleet.scheduler.filters import HostFilter

SCOPE = "aggregate_instance_extra_specs"


def _num(op):
    def compare(value, wanted):
        try:
            return op(float(value), float(wanted))
        except ValueError:  # a non-number on either side cannot satisfy a numeric operator
            return False
    return compare


# Nova's nova/scheduler/filters/extra_specs_ops.py: '=' means "at least" (a numeric >=).
_OPERATORS = {
    "=": _num(operator.ge),
    "==": _num(operator.eq),
    "!=": _num(operator.ne),
    ">=": _num(operator.ge),
    "<=": _num(operator.le),
    "<in>": lambda value, wanted: wanted in value,
    "<all-in>": lambda value, wanted: all(w in value for w in wanted),
    "s==": operator.eq,
    "s!=": operator.ne,
    "s<": operator.lt,
    "s<=": operator.le,
    "s>": operator.gt,
    "s>=": operator.ge,
}


def match(value: str | None, requirement: str) -> bool:
    """Does one aggregate metadata value satisfy one extra-spec requirement (Nova's extra_specs_ops.match)?"""
    words = requirement.split()
    op = words.pop(0) if words else None
    method = _OPERATORS.get(op) if op else None
    if op != "<or>" and method is None:
        return value == requirement
    if value is None:
        return False
    if op == "<or>":  # "<or> v1 <or> v2 <or> v3"
        return value in words[0::2]
    if not words:
        return False
    if op == "<all-in>":
        return method(value, words)
    return method(value, words[0])


def checked_specs(extra_specs: dict[str, str]) -> list[tuple[str, str]]:
    """The (aggregate metadata key, requirement) pairs this filter checks for a flavor."""
    out = []
    for key, requirement in extra_specs.items():
        scope, sep, rest = key.partition(":")
        if sep:
            if scope != SCOPE:
                continue
            key = rest
        out.append((key, requirement))
    return out


def _host_matches(metadata, specs) -> bool:
    for key, requirement in specs:
        values = metadata.get(key)
        if not values:
            return False
        if not any(match(v, requirement) for v in values):
            return False
    return True


class AggregateInstanceExtraSpecsFilter(HostFilter):
    def host_passes(self, host, spec):
        specs = checked_specs(spec.flavor.extra_specs)
        return not specs or _host_matches(host.aggregate_metadata, specs)

    def filter_all(self, hosts, spec):
        if not spec.flavor.extra_specs:
            return hosts
        specs = checked_specs(spec.flavor.extra_specs)
        if not specs:
            return hosts
        return [h for h in hosts if _host_matches(h.aggregate_metadata, specs)]

    def mask(self, cols, spec):
        if not spec.flavor.extra_specs:
            return None
        specs = checked_specs(spec.flavor.extra_specs)
        if not specs:
            return None
        # once per distinct aggregate-metadata set, then looked up per host by its code
        ok = np.fromiter((_host_matches(m, specs) for m in cols.agg_metadata), dtype=bool,
                         count=len(cols.agg_metadata))
        return ok[cols.agg]
