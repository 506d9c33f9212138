"""A small generated workload through `kvmfleet bench scheduler`, checked by the shared verify.py.

The workload generator and checker are the shared benchmark tools, found by the ``schedbench``
fixture (conftest.py: $KVMFLEET_SCHEDBENCH_DIR or ../shared/bench beside the repository); the
test fails, naming the path, when they are missing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("hosts, requests, seed", [(300, 800, 3), (40, 1200, 5)])
def test_generated_workload_passes_verify(tmp_path, schedbench, hosts, requests, seed):
    workload, result, report = tmp_path / "w.json", tmp_path / "r.json", tmp_path / "report.json"
    gen = run(sys.executable, schedbench / "gen_workload.py", "--hosts", hosts, "--requests", requests,
              "--seed", seed, "--out", workload)
    assert gen.returncode == 0, gen.stderr

    bench = run(sys.executable, "-m", "kvmfleet", "bench", "scheduler", "--workload", workload, "--out", result,
                "--json")
    assert bench.returncode == 0, bench.stderr
    summary = json.loads(bench.stdout)
    assert summary["hosts"] == hosts and summary["requests"] == requests
    data = json.loads(result.read_text())
    assert [p["id"] for p in data["placements"]] == [f"r{i:06d}" for i in range(requests)]
    assert all(p["seconds"] > 0 for p in data["placements"])
    assert data["scheduler"]["path"] == "vectorised"  # the product's default path is what is measured
    assert summary["placed"] + summary["failed"] == requests
    assert 0 < summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"] <= summary["max_ms"]

    check = run(sys.executable, schedbench / "verify.py", "--workload", workload, "--result", result, "--json", report)
    assert check.returncode == 0, check.stdout + check.stderr
    rep = json.loads(report.read_text())
    assert rep["ok"] and rep["violations"] == {}
    assert rep["failed_but_feasible"] == 0, rep["failed_but_feasible_examples"]
    assert rep["placed"] == summary["placed"]


def test_bad_workload_is_a_clear_error(tmp_path):
    workload = tmp_path / "w.json"
    workload.write_text(json.dumps({"schema_version": 9, "hosts": [], "requests": []}))
    bench = run(sys.executable, "-m", "kvmfleet", "bench", "scheduler", "--workload", workload,
                "--out", tmp_path / "r.json")
    assert bench.returncode == 1
    assert "workload schema_version 9 is not supported" in bench.stderr
    assert not (tmp_path / "r.json").exists()
