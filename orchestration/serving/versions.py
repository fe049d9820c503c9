"""Versions of the serving snapshot: the symlink onto the current file, and which earlier files go.

Each build of the snapshot (snapshot.py) is a new, uniquely named file beside the symlink; the
symlink is moved onto it atomically. Up to KEEP_PREVIOUS earlier files stay for readers that
still have them open, except those built before an erasure, which may hold the person in clear.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

# Earlier snapshot files kept beside the current one, for readers that still have them open.
KEEP_PREVIOUS = 2


def point_symlink(target: Path, version: Path) -> None:
    link = target.with_name(f".{target.name}.link.{os.getpid()}")
    link.unlink(missing_ok=True)
    link.symlink_to(version.name)  # relative: the folder can move
    os.replace(link, target)


def _previous_versions(target: Path) -> list[Path]:
    """Snapshot files beside `target` other than the one it points at, oldest first."""
    current = target.resolve().name
    versions = sorted(p for p in target.parent.glob(f".{target.name}.*")
                      if ".link." not in p.name and not p.name.endswith(".wal"))
    return [p for p in versions if p.name != current]


def _remove_version(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)


def remove_old_versions(target: Path) -> None:
    old = _previous_versions(target)
    for path in old[: max(0, len(old) - KEEP_PREVIOUS)]:
        _remove_version(path)


def _built_at(target: Path, version: Path) -> dt.datetime:
    """When a version was built (UTC, naive), from the stamp in its name, else its mtime."""
    stamp = version.name[len(target.name) + 2:].split(".", 1)[0]
    try:
        return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ")
    except ValueError:
        return dt.datetime.fromtimestamp(version.stat().st_mtime, dt.UTC).replace(tzinfo=None)


def remove_versions_before(target: Path, moment: dt.datetime) -> list[Path]:
    """Remove the previous snapshot versions built before `moment` (UTC, naive): after an
    erasure they may hold the person in clear. The current version is never removed; the
    serving asset, downstream of the privacy asset, replaces it. Returns what was removed."""
    if not target.is_symlink():
        return []
    removed = [p for p in _previous_versions(target) if _built_at(target, p) < moment]
    for path in removed:
        _remove_version(path)
    return removed
