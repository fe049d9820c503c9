"""A copy of the project in a temp folder, so a test's generated models never land in the repo."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from orchestration.settings import PROJECT_DIR

# What a pipeline run needs: the orchestration package (so the copy's PROJECT_DIR is the copy),
# the dbt project and the declarations.
PROJECT_PARTS = ("orchestration", "models", "macros", "seeds", "segments", "triggers", "activation",
                 "inputs", "data-tests", "profiles", "dbt_project.yml")


def project_copy(root: Path, parts: Sequence[str] = PROJECT_PARTS, manifest: bool = True) -> Path:
    """`root/project` with `parts` of this repository and (with `manifest`) the parsed manifest,
    so a dbt step there parses partially."""
    copy = root / "project"
    copy.mkdir()
    for part in parts:
        source = PROJECT_DIR / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy(source, copy / part)
    if manifest:
        (copy / "target").mkdir()
        for artifact in ("manifest.json", "partial_parse.msgpack"):
            if (PROJECT_DIR / "target" / artifact).exists():
                shutil.copy(PROJECT_DIR / "target" / artifact, copy / "target" / artifact)
    return copy
