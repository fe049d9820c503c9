"""A whole `cdp run` as a subprocess on any target, and the landing rows of one person to erase."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.ingestion.contract import SOURCES_BY_NAME



def write_rows(path: Path, source: str, rows: list[dict[str, str]]) -> None:
    """One landing CSV of `source` with its contract's columns (missing values empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(SOURCES_BY_NAME[source].required)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows([{c: row.get(c, "") for c in columns} for row in rows])


def request_erasure(landing: Path, email: str) -> None:
    """A new landing file of privacy_requests: erase the person with this email."""
    write_rows(landing / "privacy_requests" / "zz_erase_one.csv", "privacy_requests", [{
        "request_id": "dsr-engine-erasure-1", "identifier_type": "email",
        "identifier_value": email, "request_type": "erasure",
        "received_at": "2026-01-15T10:00:00Z"}])


@dataclass
class PipelineRuns:
    """The environment of a series of `cdp run`s on one target and the seconds each took."""

    env: dict[str, str]
    seconds: list[float] = field(default_factory=list)

    @property
    def warehouse_file(self) -> Path:
        return Path(self.env["CDP_WAREHOUSE"])

    def run(self) -> None:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "orchestration.cli", "run"],
                                env=self.env, capture_output=True, text=True, timeout=3000)
        self.seconds.append(time.perf_counter() - started)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def pipeline_env(out: Path, landing: Path, target: str, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a `cdp run` whose files all live under `out`: this process's
    environment without its CDP_* variables (a caller's CDP_AS_OF or warehouse never leaks in),
    then `extra`."""
    home = out / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_")}
    env.update({
        "CDP_LANDING_DIR": str(landing),
        "CDP_WAREHOUSE": str(out / "warehouse.duckdb"),
        "CDP_PUBLICATION": str(out / "publication.duckdb"),
        "CDP_ACTIVATION_DIR": str(out / "activation"),
        "CDP_SERVING_SNAPSHOT": str(out / "serving.duckdb"),
        "CDP_PRIVACY_EXPORT_DIR": str(out / "exports"),
        "CDP_RUN_LOG": str(out / "cdp-run.log"),
        "CDP_DBT_TARGET": target,
        "DAGSTER_HOME": str(home),
        **extra,
    })
    return env


class target_env:
    """os.environ holds a run's CDP_* variables inside the block (the warehouse interface and the
    catalog read them), restored after."""

    def __init__(self, env: dict[str, str]) -> None:
        self.updates = {k: v for k, v in env.items() if k.startswith("CDP_")}
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        self.saved = {k: os.environ.get(k) for k in self.updates}
        os.environ.update(self.updates)

    def __exit__(self, *exc: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
