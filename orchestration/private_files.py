"""Files of personal data that are never readable by others, not even while they are written."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
# Build folders sit beside the file they produce, so the final move is a same-filesystem rename.
BUILD_PREFIX = ".build-"
# A build folder this old is left over from a killed build (kill -9 skips the clean-up): removed.
STALE_BUILD_SECONDS = 3600


@contextmanager
def private_build_dir(beside: Path) -> Iterator[Path]:
    """A fresh folder (mode 0700) next to `beside`, removed with whatever is left in it.

    DuckDB creates its database and WAL files with the process umask (often 0644); inside this
    folder nobody else can open them. Move the finished file out with `publish_private`."""
    beside.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(beside)
    folder = Path(tempfile.mkdtemp(prefix=f"{BUILD_PREFIX}{beside.name}-", dir=beside.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish_private(built: Path, destination: Path, mode: int = PRIVATE_FILE_MODE) -> None:
    """Set `mode` on a finished file, then atomically rename it to `destination`."""
    os.chmod(built, mode)
    os.replace(built, destination)


def remove_stale_builds(beside: Path, older_than: float = STALE_BUILD_SECONDS) -> list[Path]:
    """Delete build folders of `beside` untouched for `older_than` seconds (killed builds)."""
    cutoff = time.time() - older_than
    stale = [p for p in beside.parent.glob(f"{BUILD_PREFIX}{beside.name}-*")
             if p.is_dir() and not p.is_symlink() and p.stat().st_mtime < cutoff]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale
