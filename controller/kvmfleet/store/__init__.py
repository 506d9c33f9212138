"""The controller's store: intent and accounting (SQLAlchemy 2 ORM + Alembic; SQLite default, PostgreSQL by URL).

Opening it::

    from kvmfleet.store import get_store, open_store
    store = get_store()                 # process-wide, on the configured URL (config.get_settings().database_url);
                                        # an empty database is migrated to head by itself, an outdated one
                                        # raises SchemaError ("run `kvmfleet db upgrade`")
    store = open_store(url)             # a private Store (tests); store.engine, store.session_factory
    with store.transaction() as session:    # commits on success, rolls back on exception
        ...
    store.run_in_transaction(fn)        # fn(session) in one transaction; the WHOLE fn is rerun (bounded,
                                        # jittered backoff) on SQLite busy/locked or PostgreSQL 40001/40P01.
                                        # Use it for writes; fn touches nothing but the session.
    store.session_factory               # sqlalchemy sessionmaker (expire_on_commit=False); pass it to claims
    upgrade(store.engine)               # alembic upgrade head (migrations ship in store/migrations/)

Models (kvmfleet.store.models, re-exported here): Project, Flavor, Image, Host, Aggregate (+ table
aggregate_hosts), ServerGroup, Instance, Allocation, Quota, QuotaDefault, InstanceAction,
InstanceActionEvent. Notable fields:

- Instance: uuid (pk), name, project_id, user_id, flavor_id + copied flavor fields (flavor_name, vcpus,
  memory_mb, root_gb, ephemeral_gb, swap, flavor_extra_specs; ``Flavor.as_instance_fields()`` gives them),
  old_flavor/new_flavor (dicts, during resize), image_id, host (host *name*), node, availability_zone,
  vm_state/task_state/power_state (enums below), fault_message/fault_details/fault_created_at, server_group_id,
  config (dict: user_data, hostname, ... — secret, never log), launched_at, terminated_at, created_at,
  updated_at, deleted_at (soft delete). Properties: status (Nova API status), fault, domain_name
  ("kvmfleet-<uuid>").
- Host: id, name (unique), address, availability_zone ("nova"), enabled, disabled_reason, state (HostState
  up/down), cpu/ram/disk_allocation_ratio (defaults from config when inserted), reserved_host_memory_mb/
  _disk_gb/_cpus, vcpus, memory_mb, local_gb (totals), arch, cpu_model, virt_types (list), hypervisor_type,
  hypervisor_version, generation (claims' compare-and-set), last_heartbeat_at, facts (last host_facts),
  failed_builds, connection (Ansible connection vars, revision 0002; no secrets). Property ``capacity`` =
  (total - reserved) * ratio per resource.
- Allocation: instance_uuid, host_id, kind (AllocationKind instance|migration), vcpus, memory_mb, disk_gb.
  Written only through kvmfleet.scheduler.claims (claim/release/move_claim/confirm_move/revert_move).
- Flavor: id (flavorid), name, vcpus, memory_mb, root_gb, ephemeral_gb, swap, extra_specs (dict).
- Image: id, name, file_path, sha256, size, virtual_size, disk_format, arch, min_ram, min_disk, status,
  properties. ServerGroup: id, name, project_id, policy (ServerGroupPolicy), max_server_per_host, members.
- InstanceAction: request_id, instance_uuid, action (Nova names: create, delete, start, stop, reboot, ...),
  project_id, user_id, start_time, finish_time, message, events. InstanceActionEvent: event, start_time,
  finish_time, result ("Success"/"Error"), traceback, details (dict), host, job_id (executor job).

States (kvmfleet.store.states): VmState, TaskState, PowerState (str enums, Nova names/values; PowerState.code
is Nova's integer), HostState, ServerGroupPolicy, AllocationKind, api_status(vm_state, task_state).

Compare-and-set (kvmfleet.store.api)::

    save_instance(session, uuid, {"task_state": TaskState.SPAWNING}, expected_task_state=TaskState.SCHEDULING)
    # expected_* : one value, None (no task) or a tuple of values; UPDATE ... WHERE task_state IS/IN expected;
    # 0 rows -> UnexpectedTaskState / UnexpectedVmState (Conflict) naming actual vs expected, or NotFound.

Lookups: get_instance, get_project (id or name), get_flavor (flavorid or name), get_image, get_host (name),
get_server_group; lock_server_group(session, id) (row lock for the late affinity check).
Validated create/delete of projects, flavors (+ create_default_flavors, DEFAULT_FLAVORS), server groups:
kvmfleet.store.resources. Errors (kvmfleet.store.errors): StoreError(msg, **details) > NotFound,
AlreadyExists, InvalidInput, InUse, Conflict (> UnexpectedTaskState, UnexpectedVmState), SchemaError.
Quotas: kvmfleet.quota (check, recheck, limits, usage; OverQuota). Claims: kvmfleet.scheduler.claims.
"""

from kvmfleet.store.api import (
    UNSET,
    get_flavor,
    get_host,
    get_image,
    get_instance,
    get_project,
    get_server_group,
    lock_server_group,
    save_instance,
    set_fault,
)
from kvmfleet.store.engine import (
    Store,
    current_revision,
    ensure_schema,
    get_store,
    head_revision,
    is_retryable,
    make_engine,
    make_session_factory,
    open_store,
    reset_store,
    run_in_transaction,
    upgrade,
)
from kvmfleet.store.errors import (
    AlreadyExists,
    Conflict,
    InUse,
    InvalidInput,
    NotFound,
    SchemaError,
    StoreError,
    UnexpectedTaskState,
    UnexpectedVmState,
)
from kvmfleet.store.models import (
    Aggregate,
    Allocation,
    Base,
    Flavor,
    Host,
    Image,
    Instance,
    InstanceAction,
    InstanceActionEvent,
    Project,
    Quota,
    QuotaDefault,
    ServerGroup,
    aggregate_hosts,
    new_uuid,
    utcnow,
)
from kvmfleet.store.states import (
    AllocationKind,
    HostState,
    PowerState,
    ServerGroupPolicy,
    TaskState,
    VmState,
    api_status,
)

__all__ = [
    "UNSET",
    "Aggregate",
    "Allocation",
    "AllocationKind",
    "AlreadyExists",
    "Base",
    "Conflict",
    "Flavor",
    "Host",
    "HostState",
    "Image",
    "InUse",
    "Instance",
    "InstanceAction",
    "InstanceActionEvent",
    "InvalidInput",
    "NotFound",
    "PowerState",
    "Project",
    "Quota",
    "QuotaDefault",
    "SchemaError",
    "ServerGroup",
    "ServerGroupPolicy",
    "Store",
    "StoreError",
    "TaskState",
    "UnexpectedTaskState",
    "UnexpectedVmState",
    "VmState",
    "aggregate_hosts",
    "api_status",
    "current_revision",
    "ensure_schema",
    "get_flavor",
    "get_host",
    "get_image",
    "get_instance",
    "get_project",
    "get_server_group",
    "get_store",
    "head_revision",
    "is_retryable",
    "lock_server_group",
    "make_engine",
    "make_session_factory",
    "new_uuid",
    "open_store",
    "reset_store",
    "run_in_transaction",
    "save_instance",
    "set_fault",
    "upgrade",
    "utcnow",
]
