"""Each target under targets/ runs on every lab host through run_target.yml; its asserts are the test."""

from __future__ import annotations

import pytest
from conftest import HERE, run_playbook

TARGETS = ["image", "domain_lifecycle", "domain_migrate", "bad_input", "network_info", "volume", "network"]


@pytest.mark.parametrize("target", TARGETS)
def test_target(lab, tiny_image, prefix, target):
    run = run_playbook(HERE / "run_target.yml", lab.inventory,
                       {"target": target, "test_prefix": prefix, **tiny_image})
    assert run.rc == 0, f"{target} failed (rc {run.rc}):\n{run.tail()}"
    recap = run.recap()
    assert set(recap) == set(lab.hosts), f"recap hosts {sorted(recap)} != lab hosts {sorted(lab.hosts)}"
    for host, counts in recap.items():
        assert counts["failed"] == 0 and counts["unreachable"] == 0, f"{host}: {counts}"
        # The last task of run_target.yml: proves the target ran to its end on this host.
        assert f"TARGET {target} COMPLETE on {host}" in run.stdout, run.tail()
