# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for a domain to reach a state: a monotonic clock plus a table of state predicates.

Shared by every module and by the controller (stdlib + libvirt only).
"""

from __future__ import annotations

import time

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError, WaitTimeout
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import domain_state, lookup_domain

# Observed state is a _libvirt.domain_state() name, or "absent" when the domain does not exist.
PREDICATES = {
    "absent": lambda state: state == "absent",
    "present": lambda state: state != "absent",
    "running": lambda state: state in ("running", "blocked"),  # blocked on a resource is still running
    "paused": lambda state: state == "paused",
    "shutoff": lambda state: state == "shutoff",
    "stopped": lambda state: state == "shutoff",
    "suspended": lambda state: state == "suspended",
    "inactive": lambda state: state in ("shutoff", "suspended", "absent"),
}


def observe(conn, name):
    """The current state of domain ``name``: a domain_state() name or 'absent'."""
    dom = lookup_domain(conn, name)
    if dom is None:
        return "absent"
    return domain_state(dom)


def wait(conn, name, predicate, timeout, interval=0.25, clock=time.monotonic, sleep=time.sleep):
    """Poll domain ``name`` until ``predicate`` holds; return the state that satisfied it.

    ``predicate`` is a key of PREDICATES or a callable taking the observed state name.
    Raises WaitTimeout carrying the last observed state when ``timeout`` seconds pass first.
    """
    if isinstance(predicate, str):
        if predicate not in PREDICATES:
            raise ValidationError(f"no wait predicate for state {predicate!r}")
        wanted, check = predicate, PREDICATES[predicate]
    else:
        wanted, check = getattr(predicate, "__name__", "condition"), predicate
    deadline = clock() + timeout
    while True:
        state = observe(conn, name)
        if check(state):
            return state
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(f"timed out after {timeout}s waiting for domain {name} to be {wanted}; it is {state}", last_state=state, name=name)
        sleep(min(interval, remaining))
