"""Instance states in Nova's vocabulary (nova/compute/vm_states.py, task_states.py, power_state.py)
and the compute API's status strings (nova/api/openstack/common.py)."""

from __future__ import annotations

import enum


class VmState(str, enum.Enum):
    """The stable state an instance is in (or settles into after its task)."""

    ACTIVE = "active"
    BUILDING = "building"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    STOPPED = "stopped"
    RESCUED = "rescued"
    RESIZED = "resized"
    SOFT_DELETED = "soft-delete"
    DELETED = "deleted"
    ERROR = "error"
    SHELVED = "shelved"
    SHELVED_OFFLOADED = "shelved_offloaded"

    def __str__(self) -> str:
        return self.value


class TaskState(str, enum.Enum):
    """The transition in progress; ``None`` (no task) is stored as NULL."""

    SCHEDULING = "scheduling"
    BLOCK_DEVICE_MAPPING = "block_device_mapping"
    NETWORKING = "networking"
    SPAWNING = "spawning"
    IMAGE_SNAPSHOT = "image_snapshot"
    IMAGE_SNAPSHOT_PENDING = "image_snapshot_pending"
    IMAGE_PENDING_UPLOAD = "image_pending_upload"
    IMAGE_UPLOADING = "image_uploading"
    UPDATING_PASSWORD = "updating_password"
    RESIZE_PREP = "resize_prep"
    RESIZE_MIGRATING = "resize_migrating"
    RESIZE_MIGRATED = "resize_migrated"
    RESIZE_FINISH = "resize_finish"
    RESIZE_REVERTING = "resize_reverting"
    RESIZE_CONFIRMING = "resize_confirming"
    REBOOTING = "rebooting"
    REBOOT_PENDING = "reboot_pending"
    REBOOT_STARTED = "reboot_started"
    REBOOTING_HARD = "rebooting_hard"
    REBOOT_PENDING_HARD = "reboot_pending_hard"
    REBOOT_STARTED_HARD = "reboot_started_hard"
    PAUSING = "pausing"
    UNPAUSING = "unpausing"
    SUSPENDING = "suspending"
    RESUMING = "resuming"
    POWERING_OFF = "powering-off"
    POWERING_ON = "powering-on"
    RESCUING = "rescuing"
    UNRESCUING = "unrescuing"
    REBUILDING = "rebuilding"
    REBUILD_BLOCK_DEVICE_MAPPING = "rebuild_block_device_mapping"
    REBUILD_SPAWNING = "rebuild_spawning"
    MIGRATING = "migrating"
    DELETING = "deleting"
    SOFT_DELETING = "soft-deleting"
    RESTORING = "restoring"
    SHELVING = "shelving"
    SHELVING_IMAGE_PENDING_UPLOAD = "shelving_image_pending_upload"
    SHELVING_IMAGE_UPLOADING = "shelving_image_uploading"
    SHELVING_OFFLOADING = "shelving_offloading"
    UNSHELVING = "unshelving"

    def __str__(self) -> str:
        return self.value


_POWER_CODES = {"NOSTATE": 0, "RUNNING": 1, "PAUSED": 3, "SHUTDOWN": 4, "CRASHED": 6, "SUSPENDED": 7}


class PowerState(str, enum.Enum):
    """What the hypervisor last reported. Nova's API shows the integer ``code``."""

    NOSTATE = "NOSTATE"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SHUTDOWN = "SHUTDOWN"
    CRASHED = "CRASHED"
    SUSPENDED = "SUSPENDED"

    @property
    def code(self) -> int:
        """Nova's integer value (OS-EXT-STS:power_state)."""
        return _POWER_CODES[self.value]

    @classmethod
    def from_code(cls, code: int) -> PowerState:
        for name, value in _POWER_CODES.items():
            if value == code:
                return cls(name)
        raise ValueError(f"unknown power state code: {code}")

    @classmethod
    def from_libvirt(cls, state: str) -> PowerState:
        """Map a libvirt state name (running, blocked, paused, shutdown, shutoff, crashed, pmsuspended)."""
        return _LIBVIRT_POWER.get(state, cls.NOSTATE)

    def __str__(self) -> str:
        return self.value


# Nova's libvirt driver LIBVIRT_POWER_STATE, by libvirt state name.
_LIBVIRT_POWER = {
    "nostate": PowerState.NOSTATE,
    "running": PowerState.RUNNING,
    "blocked": PowerState.RUNNING,
    "paused": PowerState.PAUSED,
    "shutdown": PowerState.SHUTDOWN,
    "shutoff": PowerState.SHUTDOWN,
    "crashed": PowerState.CRASHED,
    "pmsuspended": PowerState.SUSPENDED,
}


class HostState(str, enum.Enum):
    """Whether a compute host answers (facts gathered recently) — Nova's service up/down."""

    UP = "up"
    DOWN = "down"

    def __str__(self) -> str:
        return self.value


class ServerGroupPolicy(str, enum.Enum):
    AFFINITY = "affinity"
    ANTI_AFFINITY = "anti-affinity"
    SOFT_AFFINITY = "soft-affinity"
    SOFT_ANTI_AFFINITY = "soft-anti-affinity"

    def __str__(self) -> str:
        return self.value


class AllocationKind(str, enum.Enum):
    """``instance``: what the instance uses now; ``migration``: the source-side hold during a resize or
    move (Nova keeps it under the migration's consumer) until the move is confirmed or reverted."""

    INSTANCE = "instance"
    MIGRATION = "migration"

    def __str__(self) -> str:
        return self.value


_T = TaskState
_RESIZING = {_T.RESIZE_PREP: "RESIZE", _T.RESIZE_MIGRATING: "RESIZE", _T.RESIZE_MIGRATED: "RESIZE",
             _T.RESIZE_FINISH: "RESIZE"}
_REBUILDING = {_T.REBUILDING: "REBUILD", _T.REBUILD_BLOCK_DEVICE_MAPPING: "REBUILD", _T.REBUILD_SPAWNING: "REBUILD"}

# Nova's _STATE_MAP: vm_state -> {task_state or "default": API status}.
STATUS_MAP: dict[VmState, dict[TaskState | str, str]] = {
    VmState.ACTIVE: {
        "default": "ACTIVE",
        _T.REBOOTING: "REBOOT", _T.REBOOT_PENDING: "REBOOT", _T.REBOOT_STARTED: "REBOOT",
        _T.REBOOTING_HARD: "HARD_REBOOT", _T.REBOOT_PENDING_HARD: "HARD_REBOOT",
        _T.REBOOT_STARTED_HARD: "HARD_REBOOT",
        _T.UPDATING_PASSWORD: "PASSWORD",
        _T.MIGRATING: "MIGRATING",
        **_REBUILDING, **_RESIZING,
    },
    VmState.BUILDING: {"default": "BUILD"},
    VmState.STOPPED: {"default": "SHUTOFF", **_RESIZING, **_REBUILDING},
    VmState.RESIZED: {"default": "VERIFY_RESIZE", _T.RESIZE_REVERTING: "REVERT_RESIZE"},
    VmState.PAUSED: {"default": "PAUSED", _T.MIGRATING: "MIGRATING"},
    VmState.SUSPENDED: {"default": "SUSPENDED"},
    VmState.RESCUED: {"default": "RESCUE"},
    VmState.ERROR: {"default": "ERROR", **_REBUILDING},
    VmState.DELETED: {"default": "DELETED"},
    VmState.SOFT_DELETED: {"default": "SOFT_DELETED"},
    VmState.SHELVED: {"default": "SHELVED"},
    VmState.SHELVED_OFFLOADED: {"default": "SHELVED_OFFLOADED"},
}


def api_status(vm_state: VmState | str | None, task_state: TaskState | str | None = None) -> str:
    """The compute API's status for a (vm_state, task_state) pair; UNKNOWN when unmapped."""
    if vm_state is None:
        return "UNKNOWN"
    try:
        by_task = STATUS_MAP[VmState(vm_state)]
    except ValueError:
        return "UNKNOWN"
    if task_state is not None:
        try:
            task = TaskState(task_state)
        except ValueError:
            task = None
        if task is not None and task in by_task:
            return by_task[task]
    return by_task.get("default", "UNKNOWN")
