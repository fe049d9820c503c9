"""What another user could open under a folder, judged by file and folder permission bits."""

from __future__ import annotations

import stat
from pathlib import Path


def files_and_exposed(folder: Path) -> tuple[list[str], list[str]]:
    """Every file under `folder`, and those another user could open (file and folder modes)."""
    files, exposed = [], []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        files.append(path.name)
        inner = [p for p in path.parents if p != folder and folder in p.parents]
        reachable = all(p.stat().st_mode & 0o011 for p in inner)
        if path.stat().st_mode & 0o044 and reachable:
            exposed.append(f"{path.relative_to(folder)} {oct(stat.S_IMODE(path.stat().st_mode))}")
    return files, exposed
