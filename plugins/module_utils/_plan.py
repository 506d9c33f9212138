# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure plan computation for the domain module: power-state steps and config changes.

No libvirt here, so every rule is testable from data files.
"""

from __future__ import annotations

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import InvalidState

TARGET_STATES = ("present", "running", "stopped", "paused", "suspended", "absent")
ACTIVE_STATES = ("running", "blocked", "paused", "shutdown", "crashed", "pmsuspended")

# The state each action leaves the domain in.
ACTION_RESULT = {
    "define": "shutoff",
    "start": "running",
    "start_paused": "paused",
    "resume": "running",
    "pause": "paused",
    "shutdown": "shutoff",
    "destroy": "shutoff",
    "managed_save": "suspended",
    "discard_saved_state": "shutoff",
    "wakeup": "running",
    "wait_shutoff": "shutoff",
    "undefine": "absent",
}

# target -> {current state -> next action}; a state missing from the map has reached the target.
TRANSITIONS = {
    "running": {
        "absent": "define", "shutoff": "start", "suspended": "start", "paused": "resume",
        "pmsuspended": "wakeup", "crashed": "destroy", "shutdown": "wait_shutoff",
    },
    "stopped": {
        "absent": "define", "running": "shutdown", "blocked": "shutdown", "paused": "resume",
        "suspended": "discard_saved_state", "pmsuspended": "destroy", "crashed": "destroy",
        "shutdown": "wait_shutoff",
    },
    "paused": {
        "absent": "define", "running": "pause", "blocked": "pause", "shutoff": "start_paused",
        "suspended": "start_paused", "pmsuspended": "wakeup", "crashed": "destroy", "shutdown": "wait_shutoff",
    },
    "suspended": {
        "absent": "define", "running": "managed_save", "blocked": "managed_save", "paused": "managed_save",
        "shutoff": "start", "pmsuspended": "wakeup", "crashed": "destroy", "shutdown": "wait_shutoff",
    },
    "present": {"absent": "define"},
    "absent": {
        "running": "destroy", "blocked": "destroy", "paused": "destroy", "shutdown": "destroy",
        "crashed": "destroy", "pmsuspended": "destroy", "shutoff": "undefine", "suspended": "undefine",
    },
}

_MAX_STEPS = 8


def power_steps(current, target):
    """The actions that take a domain from ``current`` to ``target``, in order, with the state after each.

    ``current`` is a _libvirt.domain_state() name or "absent"; returns [(action, state_after), ...].
    """
    if target not in TRANSITIONS:
        raise InvalidState(f"unknown target state {target!r}")
    steps = []
    state = current
    while True:
        action = TRANSITIONS[target].get(state)
        if action is None:
            if state in ("nostate", "unknown"):
                raise InvalidState(f"domain is in state {state!r}; cannot bring it to {target}",
                                   state=state)
            return steps
        state = ACTION_RESULT[action]
        steps.append((action, state))
        if len(steps) > _MAX_STEPS:  # a table bug, not a user error
            raise InvalidState(f"no way from state {current!r} to {target}", state=current)


def config_changes(current, desired):
    """{field: (before, after)} for the config fields set in ``desired`` that differ from ``current``.

    An unset (None) desired field never changes anything.
    """
    changes = {}
    for field in ("vcpus", "memory_mb"):
        want = desired.get(field)
        if want is not None and current.get(field) != want:
            changes[field] = (current.get(field), want)
    return changes


def metadata_changes(current, desired):
    """The merged metadata if any key of ``desired`` differs from ``current``; None when nothing changes.

    Keys not mentioned in ``desired`` are kept; ``disks`` is owned by the module and never taken from users.
    """
    if not desired:
        return None
    current = dict(current or {})
    merged = dict(current)
    for key, value in desired.items():
        if key == "disks":
            continue
        merged[key] = value
    return merged if merged != current else None


def pending_restart(persistent, live, state):
    """Fields whose persistent value is not yet in effect in a domain that is in ``state``."""
    if state not in ACTIVE_STATES and state != "suspended":
        return []
    return [f for f in ("vcpus", "memory_mb") if persistent.get(f) is not None and persistent.get(f) != live.get(f)]


def boots_fresh(current, steps):
    """Whether the persistent definition is what the domain runs with after ``steps``: it ends shut off, or it
    is started from shut off (not restored from a managed save) on the way."""
    state = current
    for action, after in steps:
        if action in ("start", "start_paused") and state == "shutoff":
            return True
        state = after
    return state in ("shutoff", "absent")


def managed_view(fields, state):
    """The normalised managed fields used for diffs: never raw XML."""
    if fields is None:
        return {"state": state}
    return {
        "state": state,
        "vcpus": fields.get("vcpus"),
        "memory_mb": fields.get("memory_mb"),
        "disks": [{"path": d["path"], "bus": d["bus"], "format": d["format"], "readonly": d["readonly"]}
                  for d in fields.get("disks") or []],
        "nics": [{"network": n["network"], "mac": n["mac"], "model": n["model"]} for n in fields.get("nics") or []],
        "metadata": fields.get("metadata"),
    }


def domain_view(fields, state):
    """The `domain` result shape shared by domain and domain_info."""
    return {
        "name": fields.get("name"),
        "uuid": fields.get("uuid"),
        "state": state,
        "vcpus": fields.get("vcpus"),
        "memory_mb": fields.get("memory_mb"),
        "virt_type": fields.get("virt_type"),
        "disks": [{"path": d["path"], "target": d["target"], "bus": d["bus"], "format": d["format"],
                   "device": d["device"], "readonly": d["readonly"]} for d in fields.get("disks") or []],
        "nics": [{"network": n["network"], "mac": n["mac"], "model": n["model"]} for n in fields.get("nics") or []],
        "console_log": fields.get("console_log"),
        "vnc_port": fields.get("vnc_port"),
        "metadata": fields.get("metadata"),
    }


def state_reached(observed, target):
    """Whether an observed state satisfies a target state of the module."""
    if target == "present":
        return observed != "absent"
    if target == "stopped":
        return observed == "shutoff"
    if target == "running":
        return observed in ("running", "blocked")  # blocked on a resource is still running
    return observed == target
