"""The instance lifecycle (Nova's compute API + conductor + compute manager), one function per operation.

A facade: the functions live in modules by operation family (common, build, power, moves, views) and
are re-exported here under the names the CLI and tests have always used. The durable-task interface the
REST service uses is kvmfleet.compute.tasks.
"""

from __future__ import annotations

from kvmfleet.compute.build import build
from kvmfleet.compute.common import find_instance, hostname_for, image_cache_name, validate_name
from kvmfleet.compute.create import CreateRequest, create, dry_run
from kvmfleet.compute.live_migration import live_migrate
from kvmfleet.compute.moves import confirm_resize, migrate, resize, revert_resize
from kvmfleet.compute.power import delete, delete_many, power_action, rebuild, reset_state
from kvmfleet.compute.views import console_log, list_servers, server_dict, server_events, show_server

__all__ = [
    "CreateRequest",
    "build",
    "confirm_resize",
    "console_log",
    "create",
    "delete",
    "delete_many",
    "dry_run",
    "find_instance",
    "hostname_for",
    "image_cache_name",
    "list_servers",
    "live_migrate",
    "migrate",
    "power_action",
    "rebuild",
    "reset_state",
    "resize",
    "revert_resize",
    "server_dict",
    "server_events",
    "show_server",
    "validate_name",
]
