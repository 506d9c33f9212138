"""The filter-and-weigher scheduler (Nova's FilterScheduler), in process, over cached host states.

For each instance: drop ``ignore_hosts`` / keep only ``force_hosts``, run the enabled filters in
order (stopping when none is left), weigh the survivors, take the best host (or a random one of
the best ``host_subset_size``) plus alternates for retries, and consume the chosen host in memory
so the next instance of a multi-create, and the next request, see it used.

``explain`` runs the same pipeline without consuming and reports, for every rejected host, the
filter that rejected it, and for every passing host its weight and each weigher's share.

Two paths that give the same placements, weights, counts and explanations:

- vectorised (the default): the hosts' columnar mirror (``HostColumns``: the ``HostManager``'s,
  kept current by every consume, or built once per call for a plain list of states) goes through
  each plug-in's vectorised form (``mask``/``weigh_columns``, NumPy over all hosts); a plug-in
  without one (a third party's) runs per host on the current candidates, its answer turned back
  into a mask or an array, so it works alongside;
- per host (``Scheduler(..., vectorised=False)``, and for lists with duplicate host names): every
  plug-in's ``filter_all``/``weigh_all`` over ``HostState`` lists.

Ordering by the sum of normalised weights only needs each weigher's scale (multiplier / (max -
min)); the sum is built relative to the first weigher's scale, with the same floating-point
operations in the same order on both paths, and the exact per-weigher weights are computed for
the selected hosts alone. Ties go to the earlier host (host order) on both paths. All of it is
O(n) in the number of hosts.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kvmfleet.scheduler.columns import HostColumns
from kvmfleet.scheduler.config import SchedulerConfig
from kvmfleet.scheduler.exceptions import NoValidHost
from kvmfleet.scheduler.filters import HostFilter
from kvmfleet.scheduler.host_state import HostList, HostState
from kvmfleet.scheduler.plugins import load_filters, load_weighers
from kvmfleet.scheduler.request_spec import RequestSpec
from kvmfleet.scheduler.weighers import HostWeigher

LOG = logging.getLogger(__name__)

# Pseudo-filter names used in counts and explanations for the request's host lists.
IGNORE_HOSTS = "ignore_hosts"
FORCE_HOSTS = "force_hosts"


@dataclass(slots=True)
class WeighedHost:
    host: HostState
    weight: float
    weights: dict[str, float]  # weigher name -> multiplier * normalised value

    @property
    def name(self) -> str:
        return self.host.name

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host.name, "weight": self.weight, "weights": dict(self.weights)}


@dataclass(slots=True)
class Selection:
    """One placed instance: the chosen host, its weight breakdown, and alternates for a retry."""

    host: HostState
    weight: float
    weights: dict[str, float]
    alternates: list[WeighedHost] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.host.name

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host.name, "weight": self.weight, "weights": dict(self.weights),
                "alternates": [a.to_dict() for a in self.alternates]}


@dataclass
class Explanation:
    """Why hosts were rejected or ranked. ``message`` is the NoValidHost text when none passed."""

    request: str
    counts: list[tuple[str, int, int]]
    rejected: dict[str, str]
    weighed: list[WeighedHost]
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "filters": [{"filter": f, "before": b, "after": a} for f, b, a in self.counts],
            "rejected": dict(self.rejected),
            "weighed": [w.to_dict() for w in self.weighed],
            "message": self.message,
        }


def _drop_ignored(hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
    ignore = spec.ignore_hosts
    return [h for h in hosts if h.name not in ignore]


def _keep_forced(hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
    force = spec.force_hosts
    return [h for h in hosts if h.name in force]


def format_counts(counts: Sequence[tuple[str, int, int]]) -> str:
    return ", ".join(f"{name} {before}->{after}" for name, before, after in counts)


def _owner(cls: type, attr: str) -> type | None:
    """The class in ``cls``'s MRO that defines ``attr`` (with a value other than None)."""
    for klass in cls.__mro__:
        if attr in klass.__dict__:
            return klass if klass.__dict__[attr] is not None else None
    return None


_VECTOR_FORMS: dict[tuple[type, str], bool] = {}


def has_vector_form(plugin: HostFilter | HostWeigher) -> bool:
    """Does the plug-in's vectorised form (``mask``/``weigh_columns``) match its per-host rule?

    Only when the class defining the vectorised form is (or derives from) every class defining
    the per-host forms: a subclass overriding ``host_passes`` without a new ``mask`` runs per host.
    """
    cls = type(plugin)
    if isinstance(plugin, HostFilter):
        vector, per_host = "mask", ("host_passes", "filter_all")
    else:
        vector, per_host = "weigh_columns", ("weigh", "weigh_all")
    known = _VECTOR_FORMS.get((cls, vector))
    if known is None:
        owner = _owner(cls, vector)
        known = owner is not None and all(issubclass(owner, _owner(cls, a) or object) for a in per_host)
        _VECTOR_FORMS[(cls, vector)] = known
    return known


class Scheduler:
    """Filters and weighers from config (entry points), or given directly (tests)."""

    def __init__(self, config: SchedulerConfig | None = None, *,
                 filters: list[HostFilter] | None = None, weighers: list[HostWeigher] | None = None,
                 vectorised: bool = True):
        self.config = config or SchedulerConfig()
        self.filters = load_filters(self.config) if filters is None else list(filters)
        self.weighers = load_weighers(self.config) if weighers is None else list(weighers)
        self.vectorised = vectorised
        self._rng = random.Random(self.config.seed)
        self._plan_key: tuple = ()
        self._plan: tuple[list, list] = ([], [])

    # -- public API -----------------------------------------------------------------------------

    def select_destinations(self, spec: RequestSpec, hosts: Sequence[HostState], num: int | None = None,
                            alternates: int | None = None) -> list[Selection]:
        """Place ``num`` instances (default ``spec.num_instances``), consuming each chosen host.

        Raises NoValidHost when an instance cannot be placed; instances of the same call already
        placed are then given back (host usage and server group members), so nothing is half-made.
        The spec's server group records each placed member (as Nova's instance_group.hosts does).
        """
        num = spec.num_instances if num is None else num
        alternates = self.config.alternates if alternates is None else alternates
        group = spec.server_group
        hosts = hosts if isinstance(hosts, list) else list(hosts)  # any iterable, read once
        cols = self._columns(hosts)
        selections: list[Selection] = []
        try:
            for index in range(num):
                counts: list[tuple[str, int, int]] = []
                if cols is not None:
                    current, count = self._filter_columns(spec, cols, counts, None)
                    if not count:
                        raise self._no_valid_host(spec, counts, index, num)
                    selection = self._select_columns(spec, cols, current, count, alternates)
                else:
                    candidates = self._filter(spec, hosts, counts, None)
                    if not candidates:
                        raise self._no_valid_host(spec, counts, index, num)
                    selection = self._select(spec, candidates, alternates)
                selection.host.consume(spec)
                if cols is not None and not cols.attached:  # a manager's columns follow by themselves
                    cols.sync_row(cols.index[selection.host.name])
                if group is not None:
                    group.add_member(selection.host.name)
                selections.append(selection)
        except BaseException:  # give back what this call consumed, whatever stopped it, then re-raise
            for selection in selections:
                selection.host.release(spec)
                if group is not None:
                    group.remove_member(selection.host.name)
            raise
        return selections

    def explain(self, spec: RequestSpec, hosts: Sequence[HostState]) -> Explanation:
        """The pipeline's reasoning for one instance of ``spec``, consuming nothing."""
        counts: list[tuple[str, int, int]] = []
        rejected: dict[str, str] = {}
        hosts = hosts if isinstance(hosts, list) else list(hosts)
        cols = self._columns(hosts)
        if cols is not None:
            return self._explain_columns(spec, cols, counts, rejected)
        candidates = self._filter(spec, hosts, counts, rejected)
        if not candidates:
            message = self._no_valid_host(spec, counts, 0, 1, log=False).msg
            return Explanation(spec.describe(), counts, rejected, [], message)
        terms = self._weigh(candidates, spec)
        key, maximise = self._ranking_key(terms)
        order = list(range(len(candidates)))
        if key is not None:
            # stable sort: ties keep host order, as Nova's sorted(..., reverse=True) does
            order.sort(key=key.__getitem__, reverse=maximise)
        weighed = [self._weighed(candidates, terms, i) for i in order]
        return Explanation(spec.describe(), counts, rejected, weighed)

    # -- vectorised pipeline --------------------------------------------------------------------

    def _vector_plan(self) -> tuple[list, list]:
        """[(filter, has mask)], [(weigher, has weigh_columns)] for the current plug-in lists."""
        key = (tuple(self.filters), tuple(self.weighers))
        if key != self._plan_key:
            self._plan = ([(f, has_vector_form(f)) for f in self.filters],
                          [(w, has_vector_form(w)) for w in self.weighers])
            self._plan_key = key
        return self._plan

    def _columns(self, hosts: Sequence[HostState]) -> HostColumns | None:
        """The columns to schedule on, or None for the per-host path."""
        if not self.vectorised:
            return None
        if isinstance(hosts, HostList):
            cols = hosts.columns
            if cols.live and cols.n == len(hosts):
                return cols
        cols = HostColumns(hosts)  # a plain list: built once for this call
        return cols if cols.unique else None

    def _filter_columns(self, spec: RequestSpec, cols: HostColumns, counts: list[tuple[str, int, int]],
                        rejected: dict[str, str] | None) -> tuple[np.ndarray | None, int]:
        """(mask of the hosts that passed, or None for all of them; how many passed)."""
        n = cols.n
        if not n:
            return None, 0
        current, count = None, n
        if spec.ignore_hosts:
            drop = np.ones(n, dtype=bool)
            drop[cols.positions_of(spec.ignore_hosts)] = False
            current, count = self._stage_columns(IGNORE_HOSTS, drop, cols, current, count, counts, rejected)
        if count and spec.force_hosts is not None:
            keep = np.zeros(n, dtype=bool)
            keep[cols.positions_of(spec.force_hosts)] = True
            current, count = self._stage_columns(FORCE_HOSTS, keep, cols, current, count, counts, rejected)
        for host_filter, vector in self._vector_plan()[0]:
            if not count:
                break
            if vector:
                mask = host_filter.mask(cols, spec)
            else:
                mask = self._mask_per_host(host_filter, cols, current, spec)
            current, count = self._stage_columns(host_filter.name, mask, cols, current, count, counts, rejected)
        return current, count

    @staticmethod
    def _stage_columns(name, mask, cols, current, count, counts, rejected):
        if mask is None:  # no opinion: every host passes
            counts.append((name, count, count))
            return current, count
        new = mask if current is None else current & mask  # never in place: mask may be a column
        after = int(np.count_nonzero(new))
        counts.append((name, count, after))
        if rejected is not None and after != count:
            gone = ~new if current is None else current & ~new
            names = cols.names
            for i in np.flatnonzero(gone).tolist():
                rejected[names[i]] = name
        return new, after

    @staticmethod
    def _mask_per_host(host_filter: HostFilter, cols: HostColumns, current, spec: RequestSpec):
        """A plug-in without ``mask``: its ``filter_all`` on the current candidates, as a mask."""
        states = cols.states
        hosts = states if current is None else [states[i] for i in np.flatnonzero(current).tolist()]
        passed = host_filter.filter_all(hosts, spec)
        if passed is hosts or len(passed) == len(hosts):
            return None
        mask = np.zeros(cols.n, dtype=bool)
        mask[cols.positions_of(h.name for h in passed)] = True
        return mask

    def _weigh_columns(self, cols: HostColumns, idx: np.ndarray | None, spec: RequestSpec):
        """As ``_weigh``, over the candidates' positions ``idx`` (None: every position)."""
        terms = []
        candidates = None
        for weigher, vector in self._vector_plan()[1]:
            multiplier = weigher.multiplier
            if multiplier == 0.0:
                continue
            if vector:
                values = weigher.weigh_columns(cols, spec)
                if values is None:
                    continue
                raw = values if idx is None else values.take(idx)
            else:
                if candidates is None:
                    candidates = cols.states if idx is None else [cols.states[i] for i in idx.tolist()]
                values = weigher.weigh_all(candidates, spec)
                if values is None:
                    continue
                raw = np.asarray(values, dtype=np.float64)
            lo = float(raw.min()) if weigher.minval is None else weigher.minval
            hi = float(raw.max()) if weigher.maxval is None else weigher.maxval
            if lo == hi:
                continue
            terms.append((weigher, multiplier / (hi - lo), lo, raw))
        return terms

    @staticmethod
    def _ranking_key_columns(terms) -> tuple[np.ndarray | None, bool]:
        """``_ranking_key`` with arrays: the same operations, in the same order."""
        if not terms:
            return None, True
        _w, scale0, _lo, key = terms[0]
        for _w, scale, _lo, raw in terms[1:]:
            key = key + (scale / scale0) * raw
        return key, scale0 > 0

    @staticmethod
    def _top_columns(key: np.ndarray | None, maximise: bool, n: int, k: int) -> list[int]:
        """``_top`` with an array: the ``k`` best, best first, ties to the earlier host."""
        k = min(k, n)
        if key is None:
            return list(range(k))
        if k == 1:
            return [int(key.argmax() if maximise else key.argmin())]
        if k <= 8:
            work = key.copy()  # key may be a column: never write into it
            done = -np.inf if maximise else np.inf
            out = []
            for _ in range(k):
                i = int(work.argmax() if maximise else work.argmin())
                out.append(i)
                work[i] = done
            return out
        order = -key if maximise else key  # the k smallest of these, ties by position
        cut = np.partition(order, k - 1)[k - 1]
        below = np.flatnonzero(order < cut)
        at = np.flatnonzero(order == cut)[:k - len(below)]
        chosen = np.concatenate((below, at))
        return chosen[np.lexsort((chosen, order[chosen]))].tolist()

    @staticmethod
    def _weighed_columns(cols: HostColumns, idx: np.ndarray | None, terms, i: int) -> WeighedHost:
        weights = {w.name: scale * (raw.item(i) - lo) for w, scale, lo, raw in terms}  # Python floats
        position = i if idx is None else int(idx[i])
        return WeighedHost(cols.states[position], sum(weights.values(), 0.0), weights)

    @staticmethod
    def _candidates(cols: HostColumns, current: np.ndarray | None, count: int) -> np.ndarray | None:
        return None if current is None or count == cols.n else np.flatnonzero(current)

    def _select_columns(self, spec: RequestSpec, cols: HostColumns, current, count: int,
                        alternates: int) -> Selection:
        idx = self._candidates(cols, current, count)
        terms = self._weigh_columns(cols, idx, spec)
        key, maximise = self._ranking_key_columns(terms)
        subset = min(self.config.host_subset_size, count)
        top = self._top_columns(key, maximise, count, max(subset, 1 + alternates))
        chosen = top[self._rng.randrange(subset)] if subset > 1 else top[0]
        best = self._weighed_columns(cols, idx, terms, chosen)
        others = [self._weighed_columns(cols, idx, terms, i) for i in top if i != chosen][:alternates]
        return Selection(best.host, best.weight, best.weights, others)

    def _explain_columns(self, spec: RequestSpec, cols: HostColumns, counts, rejected) -> Explanation:
        current, count = self._filter_columns(spec, cols, counts, rejected)
        if not count:
            message = self._no_valid_host(spec, counts, 0, 1, log=False).msg
            return Explanation(spec.describe(), counts, rejected, [], message)
        idx = self._candidates(cols, current, count)
        terms = self._weigh_columns(cols, idx, spec)
        key, maximise = self._ranking_key_columns(terms)
        if key is None:
            order = range(count)
        else:  # stable: ties keep host order, as the per-host path's list.sort(reverse=True)
            order = np.argsort(-key if maximise else key, kind="stable").tolist()
        weighed = [self._weighed_columns(cols, idx, terms, i) for i in order]
        return Explanation(spec.describe(), counts, rejected, weighed)

    # -- per-host pipeline ----------------------------------------------------------------------

    def _filter(self, spec: RequestSpec, hosts: Sequence[HostState], counts: list[tuple[str, int, int]],
                rejected: dict[str, str] | None) -> list[HostState]:
        current = hosts if isinstance(hosts, list) else list(hosts)
        if not current:
            return current
        if spec.ignore_hosts:
            current = self._stage(IGNORE_HOSTS, _drop_ignored, current, spec, counts, rejected)
        if current and spec.force_hosts is not None:
            current = self._stage(FORCE_HOSTS, _keep_forced, current, spec, counts, rejected)
        for host_filter in self.filters:
            if not current:
                break
            current = self._stage(host_filter.name, host_filter.filter_all, current, spec, counts, rejected)
        return current

    @staticmethod
    def _stage(name, filter_all, current, spec, counts, rejected):
        before = len(current)
        after = filter_all(current, spec)
        counts.append((name, before, len(after)))
        if rejected is not None and len(after) != before:
            kept = {id(h) for h in after}
            for h in current:
                if id(h) not in kept:
                    rejected[h.name] = name
        return after

    def _weigh(self, hosts: list[HostState], spec: RequestSpec) -> list[tuple[HostWeigher, float, float, list]]:
        """(weigher, scale, minval, raw values) for every weigher that tells the hosts apart.

        A host's weight is the sum over these of ``scale * (raw - minval)``, i.e. multiplier times
        Nova's normalised value; weighers whose values are all equal add 0 and are left out.
        """
        terms = []
        for weigher in self.weighers:
            multiplier = weigher.multiplier
            if multiplier == 0.0:
                continue
            raw = weigher.weigh_all(hosts, spec)
            if raw is None:
                continue
            lo = min(raw) if weigher.minval is None else weigher.minval
            hi = max(raw) if weigher.maxval is None else weigher.maxval
            if lo == hi:
                continue
            terms.append((weigher, multiplier / (hi - lo), lo, raw))
        return terms

    @staticmethod
    def _ranking_key(terms) -> tuple[list[float] | None, bool]:
        """A list whose order (max first if the flag is True) is the order of total weights."""
        if not terms:
            return None, True
        _w, scale0, _lo, key = terms[0]
        if len(terms) == 2:
            r1 = terms[1][1] / scale0
            key = [a + r1 * b for a, b in zip(key, terms[1][3])]
        elif len(terms) == 3:
            r1, r2 = terms[1][1] / scale0, terms[2][1] / scale0
            key = [a + r1 * b + r2 * c for a, b, c in zip(key, terms[1][3], terms[2][3])]
        else:
            for _w, scale, _lo, raw in terms[1:]:
                r = scale / scale0
                key = [a + r * b for a, b in zip(key, raw)]
        return key, scale0 > 0

    @staticmethod
    def _top(key: list[float] | None, maximise: bool, n: int, k: int) -> list[int]:
        """Indices of the ``k`` best hosts, best first; ties go to the earlier host."""
        if key is None:
            return list(range(min(k, n)))
        if k == 1:
            return [key.index(max(key) if maximise else min(key))]
        values = heapq.nlargest(k, key) if maximise else heapq.nsmallest(k, key)
        out: list[int] = []
        taken: set[int] = set()
        for v in values:
            i = key.index(v)
            while i in taken:
                i = key.index(v, i + 1)
            taken.add(i)
            out.append(i)
        return out

    def _weighed(self, hosts: list[HostState], terms, i: int) -> WeighedHost:
        weights = {w.name: scale * (raw[i] - lo) for w, scale, lo, raw in terms}
        return WeighedHost(hosts[i], sum(weights.values(), 0.0), weights)

    def _select(self, spec: RequestSpec, candidates: list[HostState], alternates: int) -> Selection:
        terms = self._weigh(candidates, spec)
        key, maximise = self._ranking_key(terms)
        subset = min(self.config.host_subset_size, len(candidates))
        top = self._top(key, maximise, len(candidates), max(subset, 1 + alternates))
        chosen = top[self._rng.randrange(subset)] if subset > 1 else top[0]
        best = self._weighed(candidates, terms, chosen)
        others = [self._weighed(candidates, terms, i) for i in top if i != chosen][:alternates]
        return Selection(best.host, best.weight, best.weights, others)

    def _no_valid_host(self, spec: RequestSpec, counts, index: int, num: int, log: bool = True) -> NoValidHost:
        which = f"instance {index + 1} of {num}" if num > 1 else "the request"
        if spec.request_id:
            which += f" {spec.request_id}"
        if not counts:
            msg = f"No valid host was found for {which} ({spec.describe()}): there are no compute hosts."
            filter_name = None
        else:
            filter_name, before, _after = counts[-1]
            msg = (f"No valid host was found for {which} ({spec.describe()}): {filter_name} removed the last "
                   f"{before} host(s). Filter results: {format_counts(counts)}.")
        if log:
            LOG.warning("%s", msg)
        return NoValidHost(msg, filter_name=filter_name, counts=counts)
