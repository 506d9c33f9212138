"""Rendered list pages, kept while the store they were rendered from is unchanged.

Pollers (auto-scalers, dashboards, `openstack server list` in a loop) ask for the same page again and
again. A page is cached under the store's fingerprint (kvmfleet.store.engine.Store.fingerprint: it changes
with every commit of this process or any other, PostgreSQL or SQLite) plus everything the rendering reads
from the request: who asks (project, roles), the microversion, the base URL and the query. A page is kept
only when the fingerprint read after rendering equals the one read before (no commit landed meanwhile),
so a cached page is always exactly what rendering it again would give. LRU, `api.list_cache_pages` pages.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class PageCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._pages: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __bool__(self) -> bool:
        return self.size > 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._pages.get(key)
            if body is None:
                self.misses += 1
                return None
            self._pages.move_to_end(key)
            self.hits += 1
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        if not self.size:
            return
        with self._lock:
            self._pages[key] = body
            self._pages.move_to_end(key)
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)
