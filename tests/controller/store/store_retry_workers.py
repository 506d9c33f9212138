"""Child-process bodies for test_store_retry (multiprocessing 'spawn'). Each child opens its own engine
on the SQLite file with a tiny busy timeout, waits for the others, then runs short write transactions."""

from __future__ import annotations


def counter_worker(url, project_id, n, attempts, barrier, results):
    import time

    from kvmfleet.store import Project, open_store
    from sqlalchemy import text, update

    store = None
    calls = 0

    def bump(session):
        nonlocal calls
        calls += 1
        session.execute(update(Project).where(Project.id == project_id).values(generation=Project.generation + 1))
        time.sleep(0.003)  # hold the write lock a little so the others really collide

    done = failed = 0
    errors = []
    try:
        store = open_store(url, busy_timeout_ms=1, upgrade_empty=False)  # the parent made the schema
        store.run_in_transaction(lambda session: session.execute(text("SELECT 1")), attempts=50)  # connect (WAL pragma) before the race
        barrier.wait(60)
        for _ in range(n):
            try:
                store.run_in_transaction(bump, attempts=attempts)
                done += 1
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                failed += 1
                errors.append(f"{type(exc).__name__}: {getattr(exc, 'orig', exc)}")
    except Exception as exc:  # noqa: BLE001 - setup failed: reported to the parent
        errors.append(f"setup: {type(exc).__name__}: {exc}")
        failed += 1
    finally:
        if store is not None:
            store.dispose()
        results.put({"done": done, "failed": failed, "calls": calls, "errors": errors[:3]})
