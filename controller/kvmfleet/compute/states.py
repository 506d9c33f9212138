"""Which states each operation accepts, the task_state it runs under and where it leaves the instance.

Mirrors nova/compute/api.py's ``check_instance_state`` decorators: an operation the current state does
not allow is refused with an error naming the state, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvmfleet.compute.errors import InvalidInstanceState
from kvmfleet.store.states import PowerState, TaskState, VmState

V = VmState
T = TaskState


@dataclass(frozen=True)
class Operation:
    """An instance operation: the action name recorded, the states it accepts and the states it leaves."""

    action: str                       # instance action name (Nova's instance_actions.action)
    vm_states: frozenset[VmState] | None  # None: any vm_state
    task_state: TaskState             # task_state while it runs
    done_vm_state: VmState | None     # vm_state when it succeeds (None: keep the current one)
    done_power_state: PowerState | None
    playbook_action: str | None = None  # the `kvmfleet_action` of instance_action.yml
    any_task_state: bool = False      # allowed while another task is recorded (delete: in any state)

    def check(self, vm_state: VmState | str, task_state: TaskState | str | None, name: str) -> None:
        vm = VmState(vm_state)
        task = TaskState(task_state) if task_state is not None else None
        if task is not None and not self.any_task_state:
            raise InvalidInstanceState(
                f"cannot {self.action} instance {name} while it is {task.value} (task_state {task.value})",
                vm_state=vm.value, task_state=task.value, action=self.action)
        if self.vm_states is not None and vm not in self.vm_states:
            allowed = ", ".join(sorted(s.value for s in self.vm_states))
            raise InvalidInstanceState(
                f"cannot {self.action} instance {name} in vm_state {vm.value} (allowed: {allowed})",
                vm_state=vm.value, task_state=None, action=self.action)


OPERATIONS: dict[str, Operation] = {op.action: op for op in (
    Operation("start", frozenset({V.STOPPED}), T.POWERING_ON, V.ACTIVE, PowerState.RUNNING, "start"),
    Operation("stop", frozenset({V.ACTIVE, V.ERROR}), T.POWERING_OFF, V.STOPPED, PowerState.SHUTDOWN, "stop"),
    Operation("reboot", frozenset({V.ACTIVE}), T.REBOOTING, V.ACTIVE, PowerState.RUNNING, "reboot_soft"),
    Operation("reboot_hard", frozenset({V.ACTIVE, V.STOPPED, V.PAUSED, V.SUSPENDED, V.ERROR}),
              T.REBOOTING_HARD, V.ACTIVE, PowerState.RUNNING, "reboot_hard"),
    Operation("pause", frozenset({V.ACTIVE}), T.PAUSING, V.PAUSED, PowerState.PAUSED, "pause"),
    Operation("unpause", frozenset({V.PAUSED}), T.UNPAUSING, V.ACTIVE, PowerState.RUNNING, "unpause"),
    Operation("suspend", frozenset({V.ACTIVE}), T.SUSPENDING, V.SUSPENDED, PowerState.SHUTDOWN, "suspend"),
    Operation("resume", frozenset({V.SUSPENDED}), T.RESUMING, V.ACTIVE, PowerState.RUNNING, "resume"),
    Operation("resize", frozenset({V.ACTIVE, V.STOPPED}), T.RESIZE_PREP, V.RESIZED, None),
    Operation("confirmResize", frozenset({V.RESIZED}), T.RESIZE_CONFIRMING, None, None),
    Operation("revertResize", frozenset({V.RESIZED}), T.RESIZE_REVERTING, None, None),
    Operation("live-migration", frozenset({V.ACTIVE, V.PAUSED}), T.MIGRATING, None, None),
    Operation("migrate", frozenset({V.ACTIVE, V.STOPPED}), T.RESIZE_PREP, V.RESIZED, None),
    Operation("rebuild", frozenset({V.ACTIVE, V.STOPPED, V.ERROR}), T.REBUILDING, None, None),
    Operation("evacuate", frozenset({V.ACTIVE, V.STOPPED, V.ERROR}), T.REBUILDING, None, None),
    Operation("delete", None, T.DELETING, V.DELETED, PowerState.NOSTATE, any_task_state=True),
)}

# Instance action names as Nova records them (reboot is one action whether soft or hard).
ACTION_NAME = {"reboot_hard": "reboot"}


def operation(name: str) -> Operation:
    return OPERATIONS[name]
