"""The controller's settings, in one place: defaults < YAML file < environment.

File: ``$KVMFLEET_CONFIG`` if set, else ``<state dir>/kvmfleet.yml`` if it exists. Example::

    database:
      url: postgresql+psycopg://kvmfleet@localhost/kvmfleet   # default: SQLite <state dir>/kvmfleet.db
    allocation_ratios: {cpu: 4.0, ram: 1.0, disk: 1.0}        # Nova's initial_*_allocation_ratio
    reserved: {host_memory_mb: 512, host_disk_gb: 0, host_cpus: 0}
    quota: {instances: 10, cores: 20, ram: 51200}             # defaults for projects without limits; also
                                                              # key_pairs, server_groups, server_group_members,
                                                              # metadata_items (Nova's 100, 10, 10, 128)
    scheduler:
      enabled_filters: [ComputeFilter, ...]                   # omitted: the scheduler's own default list
      weighers: [RAMWeigher, ...]                             # omitted: the scheduler's own default list
      multipliers: {RAMWeigher: 1.0, ...}                     # by weigher name; negative packs
      max_attempts: 3                                         # also max_instances_per_host (50),
                                                              # host_subset_size (1)
    api:                           # kvmfleet serve
      bind: 127.0.0.1:8774         # HOST:PORT (KVMFLEET_API_BIND wins)
      public_url: https://cloud.example.org:8774   # what the catalog tells clients; default: the request's Host
      cert_file: /etc/kvmfleet/tls.crt             # TLS when both are given
      key_file: /etc/kvmfleet/tls.key
      token_expiration: 3600       # seconds
      workers: 4                   # task workers
      task_lease: 30               # seconds; a task whose owner stops renewing is recovered
      image_size_cap: 10737418240  # bytes: the largest image data the Image API (and image register) takes
      list_cache_pages: 32         # server-list pages kept rendered while the store is unchanged (0: off)
      console_token_ttl: 600       # seconds a remote-console URL's one-time token stays valid
      novnc_dir: /usr/share/novnc  # the noVNC client served under /console/novnc/ (Debian's novnc)
    compute:
      resize_transfer: direct      # a resize move copies the disks host to host over the hosts' root SSH
                                   # (kvm_host's kvm_host_migration_ssh); `controller`: through the controller
      live_migration_completion_timeout: 800   # seconds per GiB of memory and disk a live migration copies
                                               # (at least 2 GiB counted, Nova's option); then it is aborted
      live_migration_bandwidth: 0              # MiB/s cap on a live migration's stream (0: none)
      heartbeat_interval: 10       # seconds between the host refreshes `kvmfleet serve` runs (0: none)
      service_down_time: 30        # seconds without an answer before a host is down (>= 2.5 x the interval)
    volume:                        # block storage (/volume/v3)
      types:                       # volume types = backends, a libvirt pool of this name on every host
        local: {pool: kvmfleet-volumes, path: /var/lib/libvirt/kvmfleet/volumes}  # the default: each host's own
        shared: {pool: kvmfleet-shared, path: /srv/volumes, shared: true}  # seen by every host (NFS...)
        lvm: {pool: kvmfleet-lvm, pool_type: logical, vg: vg0}
      default_type: local
      quota: {volumes: 10, gigabytes: 1000}   # per project defaults (Cinder's)
    network:                       # tenant networks (/network/v2.0)
      vni_ranges: ["1000:65535"]   # VXLAN VNIs given to tenant networks (Neutron's [ml2_type_vxlan] vni_ranges)

Environment: KVMFLEET_CONFIG, KVMFLEET_STATE_DIR (the state dir, see kvmfleet.paths),
KVMFLEET_DATABASE_URL (wins over the file). Unknown keys and wrong types are errors naming the key.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kvmfleet import paths

# Nova's defaults ([filter_scheduler] *_weight_multiplier).
DEFAULT_MULTIPLIERS: dict[str, float] = {
    "RAMWeigher": 1.0,
    "CPUWeigher": 1.0,
    "DiskWeigher": 1.0,
    "ServerGroupSoftAffinityWeigher": 1.0,
    "ServerGroupSoftAntiAffinityWeigher": 1.0,
    "BuildFailureWeigher": 1000000.0,
    "NumInstancesWeigher": 0.0,
}


RESIZE_TRANSFERS = ("direct", "controller")


class ConfigError(Exception):
    """The configuration file or environment holds a bad value; the message names it."""


@dataclass(frozen=True)
class QuotaDefaults:
    """Nova's default quota limits; -1 means unlimited."""

    instances: int = 10
    cores: int = 20
    ram: int = 51200
    key_pairs: int = 100  # per user
    server_groups: int = 10
    server_group_members: int = 10  # per server group
    metadata_items: int = 128  # per server

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SchedulerSettings:
    enabled_filters: tuple[str, ...] | None = None
    weighers: tuple[str, ...] | None = None
    multipliers: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MULTIPLIERS))
    max_attempts: int = 3
    max_instances_per_host: int = 50  # Nova's [filter_scheduler] max_instances_per_host (NumInstancesFilter)
    host_subset_size: int = 1

    def multiplier(self, weigher: str, default: float = 1.0) -> float:
        return float(self.multipliers.get(weigher, default))


@dataclass(frozen=True)
class ApiSettings:
    """``kvmfleet serve``: where it listens, the URL clients are told (catalog), TLS, tokens, workers."""

    bind: str = "127.0.0.1:8774"
    public_url: str | None = None      # default: built from each request's Host
    region: str = "RegionOne"
    cert_file: str | None = None
    key_file: str | None = None
    token_expiration: int = 3600       # seconds (Keystone's [token] expiration)
    workers: int = 4                   # task worker threads in the service
    task_lease: int = 30               # seconds a running task's lease lasts; renewed while it runs
    console_token_ttl: int = 600       # seconds a console URL's one-time token is valid (Nova's token_ttl)
    novnc_dir: str = "/usr/share/novnc"  # noVNC's static files, served under /console/novnc/
    image_size_cap: int = 10 * 1024 ** 3  # bytes of image data accepted (Glance's image_size_cap)
    list_cache_pages: int = 32         # rendered server-list pages kept, keyed by the store's state (0: none)


@dataclass(frozen=True)
class VolumeType:
    """A volume backend: a libvirt storage pool of that name on every host (``shared``: every host sees
    the same storage there, an NFS mount or similar, so a volume never moves with its server)."""

    name: str
    pool: str
    pool_type: str = "dir"             # dir | logical
    path: str | None = "/var/lib/libvirt/kvmfleet/volumes"  # dir pools: the directory
    vg: str | None = None              # logical pools: the LVM volume group
    shared: bool = False


@dataclass(frozen=True)
class VolumeSettings:
    """Block storage (Cinder's job): the volume types (backends), the default one, the default quotas."""

    types: Mapping[str, VolumeType] = field(default_factory=lambda: {
        "local": VolumeType("local", "kvmfleet-volumes")})
    default_type: str = "local"
    volumes: int = 10        # Cinder's default quotas
    gigabytes: int = 1000


def _volume_settings(data: Any) -> VolumeSettings:
    volume = _section(data, "volume", {"types", "default_type", "quota"})
    types: dict[str, VolumeType] = {}
    for name, spec in (_section(volume.get("types"), "volume.types", set(map(str, volume.get("types") or {})))
                       .items()):
        key = f"volume.types.{name}"
        spec = _section(spec, key, {"pool", "pool_type", "path", "vg", "shared"})
        pool_type = spec.get("pool_type", "dir")
        if pool_type not in ("dir", "logical"):
            raise ConfigError(f"{key}.pool_type: expected dir or logical, got {pool_type!r}")
        for item in ("pool", "path", "vg"):
            if item in spec and not (isinstance(spec[item], str) and spec[item]):
                raise ConfigError(f"{key}.{item}: expected a non-empty string, got {spec[item]!r}")
        if pool_type == "logical" and not spec.get("vg"):
            raise ConfigError(f"{key}.vg: a logical pool needs its volume group")
        if not isinstance(spec.get("shared", False), bool):
            raise ConfigError(f"{key}.shared: expected true or false, got {spec['shared']!r}")
        types[str(name)] = VolumeType(str(name), spec.get("pool", f"kvmfleet-{name}"), pool_type,
                                      spec.get("path", VolumeType.path) if pool_type == "dir" else None,
                                      spec.get("vg"), bool(spec.get("shared", False)))
    defaults = VolumeSettings()
    types = types or dict(defaults.types)
    default_type = volume.get("default_type", "local" if "local" in types else min(types))
    if default_type not in types:
        raise ConfigError(f"volume.default_type: {default_type!r} is not one of the types ({', '.join(sorted(types))})")
    quota = _section(volume.get("quota"), "volume.quota", {"volumes", "gigabytes"})
    return VolumeSettings(types=types, default_type=default_type,
                          volumes=_number(quota.get("volumes", defaults.volumes), "volume.quota.volumes", int, -1),
                          gigabytes=_number(quota.get("gigabytes", defaults.gigabytes), "volume.quota.gigabytes",
                                            int, -1))


@dataclass(frozen=True)
class NetworkSettings:
    """Tenant networks: the VXLAN VNIs a network gets when its creator names none."""

    vni_ranges: tuple[tuple[int, int], ...] = ((1000, 65535),)


def _network_settings(data: Any) -> NetworkSettings:
    network = _section(data, "network", {"vni_ranges"})
    raw = network.get("vni_ranges", ["1000:65535"])
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"network.vni_ranges: expected a list of \"MIN:MAX\", got {raw!r}")
    ranges = []
    for item in raw:
        low, sep, high = str(item).partition(":")
        if not (sep and low.strip().isdigit() and high.strip().isdigit()
                and 1 <= int(low) <= int(high) <= 16777215):
            raise ConfigError(f"network.vni_ranges: {item!r} is not MIN:MAX with 1 <= MIN <= MAX <= 16777215")
        ranges.append((int(low), int(high)))
    return NetworkSettings(vni_ranges=tuple(ranges))


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    database_url: str
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    reserved_host_memory_mb: int = 512
    reserved_host_disk_gb: int = 0
    reserved_host_cpus: int = 0
    quota: QuotaDefaults = field(default_factory=QuotaDefaults)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    resize_transfer: str = "direct"
    live_migration_completion_timeout: int = 800
    live_migration_bandwidth: int = 0
    heartbeat_interval: float = 10.0
    service_down_time: float = 30.0
    api: ApiSettings = field(default_factory=ApiSettings)
    volume: VolumeSettings = field(default_factory=VolumeSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    config_file: Path | None = None


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _number(value: Any, key: str, kind: type, minimum: float | None = None) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"{key}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {value!r}")
    return kind(value)


def _section(data: Any, key: str, allowed: set[str]) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    return data


def _names(value: Any, key: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{key}: expected a list of names, got {value!r}")
    return tuple(value)


def load_settings(config_file: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings now (no caching). ``environ`` defaults to os.environ."""
    env = os.environ if environ is None else environ
    explicit = config_file or env.get("KVMFLEET_CONFIG")
    state = Path(env["KVMFLEET_STATE_DIR"]) if env.get("KVMFLEET_STATE_DIR") else paths.state_dir()
    path = Path(explicit) if explicit else state / "kvmfleet.yml"
    data: dict[str, Any] = {}
    if explicit or path.exists():
        try:
            with open(path, encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        try:
            data = _section(loaded, "config", {"state_dir", "database", "allocation_ratios", "reserved", "quota",
                                               "scheduler", "compute", "api", "volume", "network"})
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    try:
        return _build(data, state, env, path if data or explicit else None)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if data else str(exc)) from exc


def _build(data: dict[str, Any], state: Path, env: Mapping[str, str], source: Path | None) -> Settings:
    if "state_dir" in data and not env.get("KVMFLEET_STATE_DIR"):
        if not isinstance(data["state_dir"], str):
            raise ConfigError(f"state_dir: expected a path, got {data['state_dir']!r}")
        state = Path(data["state_dir"]).expanduser()
    database = _section(data.get("database"), "database", {"url"})
    url = env.get("KVMFLEET_DATABASE_URL") or database.get("url") or sqlite_url(state / "kvmfleet.db")
    if not isinstance(url, str):
        raise ConfigError(f"database.url: expected a string, got {url!r}")

    ratios = _section(data.get("allocation_ratios"), "allocation_ratios", {"cpu", "ram", "disk"})
    reserved = _section(data.get("reserved"), "reserved", {"host_memory_mb", "host_disk_gb", "host_cpus"})
    quota = _section(data.get("quota"), "quota", {f.name for f in dataclasses.fields(QuotaDefaults)})
    sched = _section(data.get("scheduler"), "scheduler", {"enabled_filters", "weighers", "multipliers",
                                                          "max_attempts", "max_instances_per_host",
                                                          "host_subset_size"})
    multipliers = dict(DEFAULT_MULTIPLIERS)
    raw_mult = _section(sched.get("multipliers"), "scheduler.multipliers", set(map(str, sched.get("multipliers") or {})))
    for name, value in raw_mult.items():
        multipliers[str(name)] = _number(value, f"scheduler.multipliers.{name}", float)

    compute = _section(data.get("compute"), "compute", {"resize_transfer", "live_migration_completion_timeout",
                                                        "live_migration_bandwidth", "heartbeat_interval",
                                                        "service_down_time"})
    heartbeat = _number(compute.get("heartbeat_interval", 10), "compute.heartbeat_interval", float, 0)
    down_time = _number(compute.get("service_down_time", 30), "compute.service_down_time", float, 1)
    if heartbeat and down_time < 2.5 * heartbeat:
        raise ConfigError(f"compute.service_down_time: must be at least 2.5 x compute.heartbeat_interval "
                          f"({2.5 * heartbeat:g}), got {down_time:g}")
    transfer = compute.get("resize_transfer", "direct")
    if transfer not in RESIZE_TRANSFERS:
        raise ConfigError(f"compute.resize_transfer: expected one of {', '.join(RESIZE_TRANSFERS)}, got {transfer!r}")

    api = _section(data.get("api"), "api", {"bind", "public_url", "region", "cert_file", "key_file",
                                            "token_expiration", "workers", "task_lease", "image_size_cap",
                                            "list_cache_pages", "console_token_ttl", "novnc_dir"})
    for key in ("bind", "public_url", "region", "cert_file", "key_file", "novnc_dir"):
        if key in api and not isinstance(api[key], str):
            raise ConfigError(f"api.{key}: expected a string, got {api[key]!r}")
    bind = env.get("KVMFLEET_API_BIND") or api.get("bind", ApiSettings.bind)
    if ":" not in bind or not bind.rsplit(":", 1)[1].isdigit():
        raise ConfigError(f"api.bind: expected HOST:PORT, got {bind!r}")
    api_settings = ApiSettings(
        bind=bind, public_url=api.get("public_url"), region=api.get("region", ApiSettings.region),
        cert_file=api.get("cert_file"), key_file=api.get("key_file"),
        token_expiration=_number(api.get("token_expiration", 3600), "api.token_expiration", int, 10),
        workers=_number(api.get("workers", 4), "api.workers", int, 1),
        task_lease=_number(api.get("task_lease", 30), "api.task_lease", int, 5),
        console_token_ttl=_number(api.get("console_token_ttl", 600), "api.console_token_ttl", int, 1),
        novnc_dir=api.get("novnc_dir", ApiSettings.novnc_dir),
        image_size_cap=_number(api.get("image_size_cap", ApiSettings.image_size_cap), "api.image_size_cap", int, 1),
        list_cache_pages=_number(api.get("list_cache_pages", ApiSettings.list_cache_pages), "api.list_cache_pages",
                                 int, 0))
    if bool(api_settings.cert_file) != bool(api_settings.key_file):
        raise ConfigError("api.cert_file and api.key_file: give both for TLS, or neither")

    q_defaults = QuotaDefaults()
    return Settings(
        state_dir=state,
        database_url=url,
        cpu_allocation_ratio=_number(ratios.get("cpu", 4.0), "allocation_ratios.cpu", float, 0.0),
        ram_allocation_ratio=_number(ratios.get("ram", 1.0), "allocation_ratios.ram", float, 0.0),
        disk_allocation_ratio=_number(ratios.get("disk", 1.0), "allocation_ratios.disk", float, 0.0),
        reserved_host_memory_mb=_number(reserved.get("host_memory_mb", 512), "reserved.host_memory_mb", int, 0),
        reserved_host_disk_gb=_number(reserved.get("host_disk_gb", 0), "reserved.host_disk_gb", int, 0),
        reserved_host_cpus=_number(reserved.get("host_cpus", 0), "reserved.host_cpus", int, 0),
        quota=QuotaDefaults(**{
            f.name: _number(quota.get(f.name, getattr(q_defaults, f.name)), f"quota.{f.name}", int, -1)
            for f in dataclasses.fields(QuotaDefaults)
        }),
        scheduler=SchedulerSettings(
            enabled_filters=_names(sched.get("enabled_filters"), "scheduler.enabled_filters"),
            weighers=_names(sched.get("weighers"), "scheduler.weighers"),
            multipliers=multipliers,
            max_attempts=_number(sched.get("max_attempts", 3), "scheduler.max_attempts", int, 1),
            max_instances_per_host=_number(sched.get("max_instances_per_host", 50),
                                           "scheduler.max_instances_per_host", int, 1),
            host_subset_size=_number(sched.get("host_subset_size", 1), "scheduler.host_subset_size", int, 1),
        ),
        resize_transfer=transfer,
        live_migration_completion_timeout=_number(compute.get("live_migration_completion_timeout", 800),
                                                  "compute.live_migration_completion_timeout", int, 1),
        live_migration_bandwidth=_number(compute.get("live_migration_bandwidth", 0),
                                         "compute.live_migration_bandwidth", int, 0),
        heartbeat_interval=heartbeat,
        service_down_time=down_time,
        api=api_settings,
        volume=_volume_settings(data.get("volume")),
        network=_network_settings(data.get("network")),
        config_file=source,
    )


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Tests call ``reset_settings()`` after changing the environment."""
    return load_settings()


def reset_settings() -> None:
    get_settings.cache_clear()
