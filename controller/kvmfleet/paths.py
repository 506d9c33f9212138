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


PRIVATE_DIR_MODE = 0o700  # the state dir holds the store (user data, password hashes): owner only
PRIVATE_FILE_MODE = 0o600


def ensure_private_dir(path: Path, tighten: bool = False) -> Path:
    """Create ``path`` and its missing parents as 0700 (``mkdir(parents=True)`` would make the parents
    0755 whatever the mode asked). ``tighten``: an existing ``path`` open to group or others becomes
    0700 too (the state dir, at open)."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # made by another process meanwhile
            pass
        else:
            os.chmod(directory, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask
    if tighten and path.is_dir() and path.stat().st_mode & 0o077:
        os.chmod(path, path.stat().st_mode & 0o700 | PRIVATE_DIR_MODE)
    return path


def ensure_private_file(path: Path) -> Path:
    """Create ``path`` (empty) as 0600 if absent; an existing one open to group or others becomes 0600."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE)
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & 0o077:
            os.chmod(path, mode & 0o700 | PRIVATE_FILE_MODE)
    else:
        os.close(fd)
    return path


def ensure_state_dir(path: Path | None = None) -> Path:
    """The state directory, created 0700 (or tightened to 0700 when it exists)."""
    return ensure_private_dir(path or state_dir(), tighten=True)


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
