"""Make the collection importable as ansible_collections.kvmfleet.compute and load data-file cases."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
COLLECTIONS = REPO / "build" / "collections"
if (COLLECTIONS / "ansible_collections").is_dir() and str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

CASES = Path(__file__).resolve().parent / "cases"


def load_cases(kind, pattern="*.json"):
    """[(case id, data)] for every file of cases/<kind>/; a new case is a new file."""
    files = sorted((CASES / kind).glob(pattern))
    if not files:
        raise FileNotFoundError("no cases in %s" % (CASES / kind))
    return [(f.stem, json.loads(f.read_text())) for f in files]


def case_params(kind, pattern="*.json"):
    import pytest

    return [pytest.param(data, id=name) for name, data in load_cases(kind, pattern)]


os.environ.setdefault("LIBVIRT_DEFAULT_URI", "test:///default")
