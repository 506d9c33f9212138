"""Nova's filter-and-weigher scheduler, in process, over host state cached in memory.

Public names: ``Scheduler`` (select_destinations, explain), ``SchedulerConfig``, ``HostState``,
``HostManager``, ``RequestSpec`` (+ ``Flavor``, ``ImageMeta``, ``ServerGroup``), ``Selection``,
and the errors ``NoValidHost``, ``UnknownPlugin``, ``InvalidRequest``.
Filters and weighers are plug-ins (``filters/``, ``weighers/``) discovered through entry points.
"""

from kvmfleet.scheduler.config import SchedulerConfig
from kvmfleet.scheduler.exceptions import InvalidRequest, NoValidHost, SchedulerError, UnknownPlugin
from kvmfleet.scheduler.host_state import HostManager, HostState
from kvmfleet.scheduler.request_spec import Flavor, ImageMeta, RequestSpec, ServerGroup
from kvmfleet.scheduler.scheduler import Explanation, Scheduler, Selection, WeighedHost

__all__ = [
    "Explanation", "Flavor", "HostManager", "HostState", "ImageMeta", "InvalidRequest", "NoValidHost",
    "RequestSpec", "Scheduler", "SchedulerConfig", "SchedulerError", "Selection", "ServerGroup",
    "UnknownPlugin", "WeighedHost",
]
