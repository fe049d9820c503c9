"""A fresh copy of the shared sample run's warehouse at one fixed path, for tests that build
dbt models on it: dbt keys its partial parse on the profile (which holds the warehouse path),
so every such test after the first reuses one parse instead of paying a full one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestration.settings import PROFILES_DIR, PROJECT_DIR

DBT = str(Path(sys.executable).with_name("dbt"))


@dataclass
class ScratchRun:
    """The copy (`warehouse`), the run's environment pointed at it, one dbt target folder."""

    env: dict[str, str]
    warehouse: Path
    target: Path

    def dbt(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`dbt <args>` on the copy (extra environment variables as keywords)."""
        return subprocess.run(
            [DBT, *args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROFILES_DIR),
             "--target", "duckdb", "--target-path", str(self.target), "--log-path",
             str(self.target.parent / "dbt_logs")],
            env={**self.env, **env}, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=900)

    def build(self, *select: str, **env: str) -> None:
        """`dbt build --select <select>` of models only (their data tests and unit tests run
        in the suite's own dbt test runs); fails the test with dbt's output."""
        result = self.dbt("build", "--quiet", "--select", *select, "--exclude",
                          "resource_type:test", "resource_type:unit_test", **env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def fresh_file(path: Path) -> Path:
    """`path` with no DuckDB database (nor its WAL) of an earlier test left at it."""
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    return path


def fresh_scratch(root: Path, run_env: dict[str, str]) -> ScratchRun:
    """Copy the run's warehouse to `root/warehouse.duckdb` (replacing the last test's copy)."""
    warehouse = fresh_file(root / "warehouse.duckdb")
    shutil.copyfile(run_env["CDP_WAREHOUSE"], warehouse)
    return ScratchRun({**run_env, "CDP_WAREHOUSE": str(warehouse)}, warehouse, root / "dbt_target")
