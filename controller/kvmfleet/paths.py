"""Where kvmfleet finds its collection, playbooks and state."""

from __future__ import annotations

import os
from pathlib import Path

# The repository root is the collection root (galaxy.yml beside controller/).
REPO_ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO_ROOT / "playbooks"
INVENTORIES = REPO_ROOT / "inventories"


def state_dir() -> Path:
    """The controller's state directory (store, job artifacts, image cache)."""
    return Path(os.environ.get("KVMFLEET_STATE_DIR", str(REPO_ROOT / ".cache" / "state")))


def cache_dir() -> Path:
    """Build caches (tiny image, downloaded .debs)."""
    return Path(os.environ.get("KVMFLEET_CACHE_DIR", str(REPO_ROOT / ".cache")))


def collections_path() -> Path:
    """A collections tree whose ansible_collections/kvmfleet/compute points at the repo."""
    root = REPO_ROOT / "build" / "collections"
    link = root / "ansible_collections" / "kvmfleet" / "compute"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    return root
