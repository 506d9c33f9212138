"""Where the shared scheduler benchmark tools (gen_workload.py, verify.py) are.

They are not copied into this repository (one copy, owned by the benchmark): they are found in
``$KVMFLEET_SCHEDBENCH_DIR`` or else in ``shared/bench`` beside the repository's clone (``../shared/bench``
from the repository root; CI puts a copy of ``shared/`` there).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
TOOLS = ("gen_workload.py", "verify.py")


def schedbench_dir() -> Path:
    """The directory holding the tools; raises FileNotFoundError naming what is missing."""
    env = os.environ.get("KVMFLEET_SCHEDBENCH_DIR")
    where = Path(env) if env else (REPO_ROOT.parent / "shared" / "bench").resolve()
    source = "$KVMFLEET_SCHEDBENCH_DIR" if env else "../shared/bench beside the repository"
    missing = [str(where / tool) for tool in TOOLS if not (where / tool).is_file()]
    if missing:
        raise FileNotFoundError(f"scheduler benchmark tools missing ({source}): {', '.join(missing)}")
    return where
