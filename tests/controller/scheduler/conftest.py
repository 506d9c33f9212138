"""Shared fixtures. ``schedbench``: the directory of the shared benchmark tools (sched_tools.py).

Tests needing the tools FAIL, naming the path looked at, when they are missing: a missing tool
must not turn into a silent skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sched_tools import schedbench_dir


@pytest.fixture(scope="session")
def schedbench() -> Path:
    try:
        return schedbench_dir()
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
