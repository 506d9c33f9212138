"""Run in child processes (multiprocessing 'spawn') by test_tasks_claim.py: each child opens its own
store on the URL, waits for the others at the barrier, then claims tasks from several threads until the
queue is empty, and reports every task id it took."""

from __future__ import annotations

import threading
import time


def claim_worker(url, name, threads, barrier, results):
    from kvmfleet.compute import tasks
    from kvmfleet.store import open_store

    store = open_store(url)
    taken: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def loop(n: int) -> None:
        owner = f"{name}:{n}"
        while True:
            try:
                rows = tasks.claim(store, owner, limit=3)
            except Exception as exc:  # noqa: BLE001 - reported to the parent as a failure
                with lock:
                    errors.append(repr(exc))
                return
            if not rows:
                return
            with lock:
                taken.extend(r.id for r in rows)
            time.sleep(0.05)  # "runs" it: the other claimers get their turn (a loaded machine starts them late)

    try:
        store.engine.connect().close()
        barrier.wait(60)
        workers = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        results.put((name, taken, errors))
    finally:
        store.dispose()
