"""The executor: the only code in kvmfleet that calls ansible-runner.

`run(job)` gives every job its own private data dir under <state dir>/jobs/<job id>/, passes the
inventory and extravars as data (extravars through a 0600 file deleted after the run, never on a
command line), records the events ordered by `counter`, folds them into one result per host,
maps runner's status to ours, honours cancellation and keeps only the last N job dirs. ansible-playbook
runs under kvmfleet.ansible_guard, so a killed controller (kill -9 included) leaves no playbook running.
Extravars are written as YAML tagged !unsafe (see unsafe_yaml): tenant text is never templated.

Secrets: values of the extravars named in `Job.secret_vars` are scrubbed from every event, from the
stdout file and from the result before anything is written or returned; modules' no_log options are
already censored by Ansible.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import shlex
import shutil
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvmfleet import paths

REDACTED = "********"
DEFAULT_KEEP_JOBS = 200
HOST_GROUP = "kvm_hosts"


class JobStatus(str, enum.Enum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELED = "canceled"


class HostStatus(str, enum.Enum):
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"


class ExecutorError(Exception):
    """The job could not be started at all (bad playbook path, bad inventory)."""


@dataclass
class InventoryHost:
    """One host as the executor hands it to Ansible: its name, address and connection vars."""

    name: str
    address: str
    vars: dict[str, Any] = field(default_factory=dict)


def build_inventory(hosts: Iterable[InventoryHost], group: str = HOST_GROUP,
                    group_vars: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An inventory as data: every host in `group`, its address as ansible_host plus its own vars."""
    members: dict[str, dict[str, Any]] = {}
    for host in hosts:
        hv = {"ansible_host": host.address}
        hv.update(host.vars or {})
        members[host.name] = hv
    body: dict[str, Any] = {"hosts": members}
    if group_vars:
        body["vars"] = dict(group_vars)
    return {"all": {"children": {group: body}}}


@dataclass
class Job:
    playbook: str
    inventory: dict[str, Any]
    extravars: dict[str, Any] = field(default_factory=dict)
    secret_vars: tuple[str, ...] = ()
    limit: str | None = None
    forks: int = 20
    timeout: int | None = None
    cancel_callback: Callable[[], bool] | None = None
    event_callback: Callable[[dict[str, Any]], None] | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    verbosity: int = 0

    def playbook_path(self) -> Path:
        path = Path(self.playbook)
        if not path.is_absolute():
            path = paths.PLAYBOOKS / path
        return path


@dataclass
class TaskResult:
    """One task's outcome on one host (a runner_on_* event)."""

    host: str
    task: str
    action: str
    status: HostStatus
    result: dict[str, Any]
    counter: int
    at: str = ""  # when the controller got this result (the event's `created`, ISO 8601 UTC)

    @property
    def msg(self) -> str:
        msg = _message(self.result)
        if self.result.get("results"):
            # A loop: the items' own messages say more than "One or more items failed".
            msgs = [_message(r) for r in self.result["results"]
                    if isinstance(r, dict) and (r.get("failed") or r.get("unreachable"))]
            msg = "; ".join(m for m in msgs if m) or msg
        return str(msg or "")


def _message(result: dict[str, Any]) -> str:
    """A result's msg; for a command that failed ("non-zero return code"), with the end of its stderr."""
    msg = str(result.get("msg") or "")
    stderr = result.get("stderr")
    if isinstance(stderr, str) and stderr.strip() and "rc" in result:
        tail = " ".join(stderr.strip().splitlines()[-2:])[-300:]
        msg = f"{msg} (rc {result['rc']}): {tail}" if msg else tail
    return msg


@dataclass
class HostResult:
    host: str
    tasks: list[TaskResult] = field(default_factory=list)

    @property
    def status(self) -> HostStatus:
        seen = {t.status for t in self.tasks}
        for status in (HostStatus.UNREACHABLE, HostStatus.FAILED, HostStatus.CHANGED, HostStatus.OK):
            if status in seen:
                return status
        return HostStatus.SKIPPED

    @property
    def ok(self) -> bool:
        return self.status in (HostStatus.OK, HostStatus.CHANGED, HostStatus.SKIPPED)

    @property
    def error(self) -> str:
        """The message of the first failed or unreachable task, '' when none."""
        for task in self.tasks:
            if task.status in (HostStatus.FAILED, HostStatus.UNREACHABLE):
                return f"{task.task}: {task.msg}" if task.msg else task.task
        return ""

    def task_result(self, task: str) -> TaskResult | None:
        """The last result of the task named `task` (a playbook task name)."""
        for result in reversed(self.tasks):
            if result.task == task:
                return result
        return None

    def task_of(self, action: str) -> TaskResult | None:
        """The last task running `action` (a module name, short or FQCN)."""
        for task in reversed(self.tasks):
            if task.action == action or task.action.rsplit(".", 1)[-1] == action:
                return task
        return None

    def result_of(self, action: str) -> dict[str, Any] | None:
        """The last result of a task running `action` (a module name, short or FQCN)."""
        task = self.task_of(action)
        return task.result if task else None

    def answered_at(self, action: str) -> dt.datetime | None:
        """When the controller got the last result of `action` from this host (aware UTC), None if never."""
        task = self.task_of(action)
        when = dt.datetime.fromisoformat(task.at) if task and task.at else None
        return when.replace(tzinfo=when.tzinfo or dt.UTC) if when else None


@dataclass
class JobResult:
    id: str
    status: JobStatus
    rc: int | None
    hosts: dict[str, HostResult]
    events: list[dict[str, Any]]
    private_data_dir: Path
    started_at: float
    finished_at: float
    stdout_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is JobStatus.SUCCESSFUL

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at

    def host(self, name: str) -> HostResult:
        return self.hosts.get(name) or HostResult(host=name)

    def error_for(self, name: str) -> str:
        """Why `name` failed, falling back to the job status when the host produced no task event."""
        hr = self.host(name)
        if hr.error:
            return hr.error
        if self.status is not JobStatus.SUCCESSFUL:
            return f"job {self.status.value}" + (f": {self.ansible_error}" if self.ansible_error else "")
        return ""

    @property
    def ansible_error(self) -> str:
        """Ansible's own error line (a playbook that does not parse, a missing module), '' if none."""
        lines = [ln.strip() for ln in self.stdout_tail.splitlines() if ln.strip()]
        for i, line in enumerate(lines):
            if line.startswith(("ERROR!", "[ERROR]")):
                return " ".join(lines[i:i + 2])[:500]
        return lines[-1][:500] if lines else ""

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "rc": self.rc,
            "duration": round(self.duration, 3),
            "hosts": {name: {"status": hr.status.value, "error": hr.error} for name, hr in self.hosts.items()},
        }


_HOST_EVENTS = {
    "runner_on_ok": HostStatus.OK,
    "runner_on_failed": HostStatus.FAILED,
    "runner_on_unreachable": HostStatus.UNREACHABLE,
    "runner_on_skipped": HostStatus.SKIPPED,
}


class _Redactor:
    """Replaces every secret value (and its JSON-escaped form) in strings, recursively."""

    def __init__(self, secrets: Iterable[str]):
        needles: set[str] = set()
        for value in secrets:
            if not value:
                continue
            needles.add(value)
            needles.add(value.strip())
            # Modules often split or strip text (stdout_lines): each substantial line is a secret too.
            needles.update(line.strip() for line in value.splitlines() if len(line.strip()) >= 6)
            escaped = json.dumps(value)[1:-1]
            needles.add(escaped)
            needles.add(json.dumps(value, ensure_ascii=False)[1:-1])
            # The default callback shows multi-line strings as one line of repr-like text.
            needles.add(value.replace("\n", "\\n"))
        # Longest first so a secret that contains another is replaced whole.
        self.needles = sorted((n for n in needles if len(n) >= 4), key=len, reverse=True)

    def text(self, value: str) -> str:
        for needle in self.needles:
            if needle in value:
                value = value.replace(needle, REDACTED)
        return value

    def data(self, value: Any) -> Any:
        if not self.needles:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


def _secret_values(extravars: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """Every string found under the named extravars (a secret may be a nested dict of values)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    for name in names:
        if name in extravars:
            walk(extravars[name])
    return found


class _UnsafeRoot(dict):
    """The extravars mapping, emitted with the YAML tag !unsafe (ansible-core 2.19 and later)."""


class _UnsafeStr(str):
    """A string emitted with the YAML tag !unsafe (ansible-core before 2.19)."""


def _tag_strings(value: Any) -> Any:
    if isinstance(value, str):
        return _UnsafeStr(value)
    if isinstance(value, Mapping):
        return {str(k): _tag_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tag_strings(v) for v in value]
    return value


def _root_tag_works() -> bool:
    """Whether this interpreter's ansible-core (the one ansible-playbook runs under) marks every value under
    a mapping tagged !unsafe as unsafe: 2.19 and later do; before 2.19 the nested mappings come out empty."""
    try:
        from ansible.release import __version__
    except ImportError:  # pragma: no cover - ansible-core is a dependency
        return True
    major_minor = tuple(int(p) for p in __version__.split(".")[:2] if p.isdigit())
    return major_minor >= (2, 19)


def unsafe_yaml(extravars: Mapping[str, Any], root_tag: bool | None = None) -> str:
    """The extravars as YAML that Ansible loads as unsafe: tenant text (a server's display name, its user
    data) reaches the playbooks as data and is never rendered as a Jinja template on the controller.

    ansible-core 2.19 re-resolves the tag of a scalar tagged !unsafe as if it were plain, so
    `!unsafe "52:54:00:24:02:53"` became the integer 41135126573 (a YAML 1.1 base-60 number) and
    `!unsafe "yes"` became True. There the tag goes on the root mapping: every string under it is untrusted
    and a double-quoted string stays a string. Older releases construct only a scalar tagged !unsafe
    correctly, so there each string carries the tag."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def root(dumper: Any, data: dict[str, Any]) -> Any:
        return dumper.represent_mapping("!unsafe", dict(data))

    def string(dumper: Any, data: str) -> Any:
        return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')

    def unsafe_string(dumper: Any, data: str) -> Any:
        return dumper.represent_scalar("!unsafe", str(data), style='"')

    Dumper.add_representer(str, string)
    Dumper.add_representer(_UnsafeRoot, root)
    Dumper.add_representer(_UnsafeStr, unsafe_string)
    if root_tag is None:
        root_tag = _root_tag_works()
    if root_tag:
        data: Any = _UnsafeRoot({str(k): v for k, v in extravars.items()})
    else:
        data = _tag_strings(dict(extravars))
    return yaml.dump(data, Dumper=Dumper, allow_unicode=True, sort_keys=False,
                     default_flow_style=False, width=1 << 30)


def jobs_dir() -> Path:
    return paths.state_dir() / "jobs"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _env(job: Job) -> dict[str, str]:
    collections = str(paths.collections_path())
    # ansible-playbook lives beside the interpreter that runs us (the venv), not necessarily on PATH.
    bindir = os.path.dirname(sys.executable)
    search = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    return {
        "PATH": bindir + os.pathsep + search,
        "ANSIBLE_CONFIG": str(paths.REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": collections,
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORKS": str(job.forks),
    }


def guard_binary() -> Path:
    """The executable ansible-runner starts in place of ansible-playbook (kvmfleet.ansible_guard): written
    under <state dir>/bin for this interpreter, rewritten when it differs."""
    path = paths.state_dir() / "bin" / "ansible-playbook"
    text = f"#!{sys.executable}\nfrom kvmfleet.ansible_guard import main\n\nmain()\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except OSError:
        pass
    paths.ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    _write_private(tmp, text)
    os.chmod(tmp, 0o700)
    os.replace(tmp, path)
    return path


def rotate(keep: int, directory: Path | None = None, exclude: str | None = None) -> list[Path]:
    """Remove all but the newest `keep` job dirs; returns what was removed."""
    directory = directory or jobs_dir()
    if keep <= 0 or not directory.is_dir():
        return []
    dirs = [p for p in directory.iterdir() if p.is_dir() and p.name != exclude and not p.name.startswith(".")]
    dirs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for old in dirs[max(keep - (1 if exclude else 0), 0):]:
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed


def _keep_jobs() -> int:
    try:
        return int(os.environ.get("KVMFLEET_KEEP_JOBS", DEFAULT_KEEP_JOBS))
    except ValueError:
        return DEFAULT_KEEP_JOBS


def run(job: Job, keep: int | None = None) -> JobResult:
    """Run one playbook job through ansible-runner and return its per-host results."""
    import ansible_runner  # imported here: the CLI starts faster for commands that never run a job

    playbook = job.playbook_path()
    if not playbook.is_file():
        raise ExecutorError(f"playbook not found: {playbook}")
    if not isinstance(job.inventory, dict) or not job.inventory:
        raise ExecutorError("job inventory must be a non-empty dict")

    pdd = jobs_dir() / job.id
    if pdd.exists():
        raise ExecutorError(f"job dir already exists: {pdd}")
    pdd.mkdir(parents=True, mode=0o700)
    redactor = _Redactor(_secret_values(job.extravars, job.secret_vars))

    extravars_file = pdd / "env" / "extravars"
    _write_private(extravars_file, unsafe_yaml(job.extravars))
    _write_private(pdd / "inventory" / "hosts.json", json.dumps(job.inventory))

    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_event(event: dict[str, Any]) -> bool:
        if redactor.needles:
            clean = redactor.data(event)
            event.clear()
            event.update(clean)  # runner writes the dict we were handed: write the redacted one
        clean = dict(event)
        with lock:
            events.append(clean)
        if job.event_callback is not None and clean.get("event") in _HOST_EVENTS:
            job.event_callback(clean)
        return True

    def cancelled() -> bool:
        return bool(job.cancel_callback and job.cancel_callback())

    started = time.time()
    try:
        runner = ansible_runner.run(
            private_data_dir=str(pdd),
            ident=job.id,
            playbook=str(playbook),
            inventory=str(pdd / "inventory" / "hosts.json"),
            limit=job.limit,
            forks=job.forks,
            verbosity=job.verbosity or None,
            envvars=_env(job),
            settings={"pexpect_timeout": 0.5},
            suppress_ansible_output=True,
            timeout=job.timeout,
            cancel_callback=cancelled,
            event_handler=on_event,
            quiet=True,
            suppress_env_files=True,
            project_dir=str(paths.REPO_ROOT),
            binary=str(guard_binary()),  # no playbook outlives us (kill -9 included)
            cmdline=shlex.quote(str(playbook)),  # with a binary, runner leaves the playbook to us
        )
    finally:
        # The extravars file held the secrets: it never outlives the run.
        extravars_file.unlink(missing_ok=True)
    finished = time.time()

    artifacts = pdd / "artifacts" / job.id
    _scrub_artifacts(artifacts, redactor, _env(job))

    status = _map_status(runner.status)
    events.sort(key=lambda e: e.get("counter", 0))
    hosts = _fold(events)
    stdout_tail = ""
    stdout_file = artifacts / "stdout"
    if stdout_file.is_file():
        stdout_tail = stdout_file.read_text(encoding="utf-8", errors="replace")[-4000:]
    result = JobResult(
        id=job.id, status=status, rc=runner.rc, hosts=hosts, events=events,
        private_data_dir=pdd, started_at=started, finished_at=finished, stdout_tail=stdout_tail,
    )
    _write_private(pdd / "result.json", json.dumps(result.summary(), indent=2))
    rotate(_keep_jobs() if keep is None else keep, exclude=job.id)
    return result


def _map_status(status: str) -> JobStatus:
    if status == "successful":
        return JobStatus.SUCCESSFUL
    if status == "timeout":
        return JobStatus.TIMEOUT
    if status == "canceled":
        return JobStatus.CANCELED
    return JobStatus.FAILED


def _fold(events: list[dict[str, Any]]) -> dict[str, HostResult]:
    hosts: dict[str, HostResult] = {}
    for event in events:
        status = _HOST_EVENTS.get(event.get("event", ""))
        if status is None:
            continue
        data = event.get("event_data", {})
        host = data.get("host") or data.get("remote_addr")
        if not host:
            continue
        res = data.get("res") or {}
        if status is HostStatus.OK and res.get("changed"):
            status = HostStatus.CHANGED
        if status is HostStatus.FAILED and data.get("ignore_errors"):
            status = HostStatus.OK
        hosts.setdefault(host, HostResult(host=host)).tasks.append(TaskResult(
            host=host, task=data.get("task", ""), action=data.get("task_action", "") or data.get("resolved_action", ""),
            status=status, result=res, counter=event.get("counter", 0), at=str(event.get("created") or ""),
        ))
    return hosts


def _scrub_artifacts(artifacts: Path, redactor: _Redactor, envvars: dict[str, str]) -> None:
    """Redact secrets from the files runner wrote, and drop the controller's environment from `command`."""
    command = artifacts / "command"
    if command.is_file():
        try:
            data = json.loads(command.read_text(encoding="utf-8"))
        except ValueError:
            data = {}
        data["env"] = envvars  # runner records the whole process environment; keep only ours
        _write_private(command, json.dumps(data))
    if not redactor.needles:
        return
    for name in ("stdout", "stderr"):
        path = artifacts / name
        if path.is_file():
            _write_private(path, redactor.text(path.read_text(encoding="utf-8", errors="replace")))
    events_dir = artifacts / "job_events"
    if events_dir.is_dir():
        for path in events_dir.iterdir():
            text = path.read_text(encoding="utf-8", errors="replace")
            clean = redactor.text(text)
            if clean != text:
                _write_private(path, clean)


def read_inventory_file(path: str | os.PathLike[str]) -> list[InventoryHost]:
    """The hosts of a YAML inventory with every group var folded into each host (host vars win)."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ExecutorError(f"{path}: not a YAML inventory (expected a mapping of groups)")
    found: dict[str, dict[str, Any]] = {}

    def walk(group: dict[str, Any] | None, inherited: dict[str, Any]) -> None:
        group = group or {}
        merged = {**inherited, **(group.get("vars") or {})}
        for name, hv in (group.get("hosts") or {}).items():
            found.setdefault(name, {}).update({**merged, **(hv or {})})
        for child in (group.get("children") or {}).values():
            walk(child, merged)

    for group in data.values():
        walk(group, {})
    hosts = []
    for name, hv in found.items():
        hv = dict(hv)
        address = str(hv.pop("ansible_host", name))
        hosts.append(InventoryHost(name=name, address=address, vars=hv))
    return hosts
