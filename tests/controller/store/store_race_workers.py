"""Functions run in child processes (multiprocessing 'spawn') by the race tests. Each child opens its
own engine on the URL, waits for the others at the barrier, then tries once and reports its outcome."""

from __future__ import annotations


def claim_worker(url, instance_uuid, host_name, expected_generation, barrier, results):
    from kvmfleet.scheduler.claims import ClaimConflict, Resources, claim
    from kvmfleet.store import open_store

    store = open_store(url)
    try:
        store.engine.connect().close()  # connect before the barrier so the race is on the claim itself
        barrier.wait(60)
        try:
            claim(store.session_factory, instance_uuid, host_name, Resources(1, 256, 1), expected_generation)
            results.put(("won", instance_uuid))
        except ClaimConflict as exc:
            results.put(("lost", type(exc).__name__))
        except Exception as exc:  # noqa: BLE001 - reported to the parent as a failure
            results.put(("error", repr(exc)))
    finally:
        store.dispose()


def quota_worker(url, project_id, name, barrier, results):
    from kvmfleet import quota
    from kvmfleet.store import Instance, open_store

    store = open_store(url)
    try:
        store.engine.connect().close()
        barrier.wait(60)
        try:
            with store.transaction() as s:
                quota.check(s, project_id, {"instances": 1, "cores": 1, "ram": 256})
                s.add(Instance(name=name, project_id=project_id, flavor_name="t", vcpus=1, memory_mb=256))
            results.put(("won", name))
        except quota.OverQuota as exc:
            results.put(("lost", exc.msg))
        except Exception as exc:  # noqa: BLE001 - reported to the parent as a failure
            results.put(("error", repr(exc)))
    finally:
        store.dispose()
