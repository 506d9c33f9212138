"""Nova's filter-and-weigher scheduler, in process, over host state cached in memory.

Public names: ``Scheduler`` (select_destinations, explain), ``SchedulerConfig``, ``HostState``,
``HostManager``, ``RequestSpec`` (+ ``Flavor``, ``ImageMeta``, ``ServerGroup``), ``Selection``,
and the errors ``NoValidHost``, ``UnknownPlugin``, ``InvalidRequest``.
Filters and weighers are plug-ins (``filters/``, ``weighers/``) discovered through entry points.
The scheduler runs them vectorised (NumPy over ``HostColumns``, the columnar mirror a ``HostManager``
keeps of its hosts, carried by its ``HostList``) or per host; both give the same decisions.
"""

from kvmfleet.scheduler.columns import HostColumns
from kvmfleet.scheduler.config import SchedulerConfig
from kvmfleet.scheduler.exceptions import InvalidRequest, NoValidHost, SchedulerError, UnknownPlugin
from kvmfleet.scheduler.host_state import HostList, HostManager, HostState
from kvmfleet.scheduler.request_spec import Flavor, ImageMeta, RequestSpec, ServerGroup
from kvmfleet.scheduler.scheduler import Explanation, Scheduler, Selection, WeighedHost

__all__ = [
    "Explanation", "Flavor", "HostColumns", "HostList", "HostManager", "HostState", "ImageMeta", "InvalidRequest",
    "NoValidHost", "RequestSpec", "Scheduler", "SchedulerConfig", "SchedulerError", "Selection", "ServerGroup",
    "UnknownPlugin", "WeighedHost",
]
