"""Fixtures shared by every controller test directory: the lab named by $KVMFLEET_LAB.

A missing lab is a failure, never a skip. (This conftest also puts tests/controller on sys.path, so
the test directories import conftest_lab.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def lab_inventory() -> Path:
    lab = os.environ.get("KVMFLEET_LAB")
    assert lab, "KVMFLEET_LAB must name a running lab with 3 hosts (kvmfleet lab up --name NAME --hosts 3)"
    inventory = Path("/var/lib/kvmfleet-lab") / lab / "hosts.yml"
    assert inventory.is_file(), f"lab inventory missing: {inventory} (is lab {lab} up?)"
    return inventory
