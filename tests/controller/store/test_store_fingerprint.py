"""Store.fingerprint, the key of the API's rendered-page cache: on SQLite and PostgreSQL it changes with
every commit (this connection's, another connection's, another process's) and stays put while nothing is
committed, so a cached page can never outlive the data it was rendered from."""

from __future__ import annotations

import subprocess
import sys

from kvmfleet.store import Instance


def _fp(store):
    with store.read() as s:
        return store.fingerprint(s)


def _rename(store, uuid, name):
    with store.transaction() as s:
        s.get(Instance, uuid).name = name


def test_unchanged_store_keeps_its_fingerprint(store, make):
    make.instance(make.project())
    first = _fp(store)
    assert first is not None
    assert _fp(store) == first
    with store.read() as s:  # a read between two fingerprints of one session changes nothing either
        a = store.fingerprint(s)
        s.get(Instance, "no-such")
        assert store.fingerprint(s) == a


def test_every_commit_of_this_process_changes_it(store, make):
    uuid = make.instance(make.project())
    seen = {_fp(store)}
    for i in range(5):  # the pool hands back the same connection: its own commits must count too
        _rename(store, uuid, f"vm-{i}")
        fp = _fp(store)
        assert fp not in seen, f"commit {i} left the fingerprint at {fp}"
        seen.add(fp)


def test_a_commit_during_a_read_never_hides_behind_an_unchanged_fingerprint(store, make):
    """The cache's rule: a page is kept only when the fingerprints before and after rendering are equal.
    A commit landing between them must either change the second one, or not be seen by the read."""
    uuid = make.instance(make.project(), name="old")
    with store.read() as s:
        before = store.fingerprint(s)
        _rename(store, uuid, "new")  # another pooled connection commits meanwhile
        name = s.get(Instance, uuid).name
        after = store.fingerprint(s)
    assert after != before or name == "old", "a page rendered from new data would be cached under the old key"
    assert _fp(store) != before  # and the next request renders afresh


def test_commit_from_another_process_changes_it(store, make, db_url):
    uuid = make.instance(make.project())
    before = _fp(store)
    code = ("import sys; from kvmfleet.store import open_store, Instance; st = open_store(sys.argv[1]);\n"
            "with st.transaction() as s: s.get(Instance, sys.argv[2]).name = 'from-elsewhere'\n")
    subprocess.run([sys.executable, "-c", code, db_url, uuid], check=True, timeout=120)
    assert _fp(store) != before
    with store.read() as s:
        assert s.get(Instance, uuid).name == "from-elsewhere"


def test_a_transaction_that_changes_nothing_keeps_it(store, make):
    """The service's workers poll the task queue in transactions that usually find nothing: those must not
    empty the page cache several times a second."""
    make.instance(make.project())
    before = _fp(store)
    for _ in range(3):
        with store.transaction() as s:
            s.get(Instance, "no-such")
    assert _fp(store) == before
