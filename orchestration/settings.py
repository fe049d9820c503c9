"""Runtime settings from environment variables (CDP_*), resolved to absolute paths."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROFILES_DIR = PROJECT_DIR / "profiles"


@dataclass(frozen=True)
class Settings:
    landing_dir: Path
    warehouse: Path
    as_of: dt.date | None
    dbt_target: str
    spark_warehouse: Path

    def export_env(self) -> None:
        """Make dbt (which may run from a copied directory) see the same absolute paths."""
        os.environ["CDP_LANDING_DIR"] = str(self.landing_dir)
        os.environ["CDP_WAREHOUSE"] = str(self.warehouse)
        os.environ["CDP_DBT_TARGET"] = self.dbt_target
        os.environ["CDP_SPARK_WAREHOUSE"] = str(self.spark_warehouse)
        if self.as_of is not None:
            os.environ["CDP_AS_OF"] = self.as_of.isoformat()


def _absolute(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = PROJECT_DIR / path
    return path.resolve()


def parse_as_of(value: str | None) -> dt.date | None:
    if value is None or value.strip() == "":
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"CDP_AS_OF must be a date like 2024-06-30, got {value!r}") from exc


def load_settings() -> Settings:
    """Read CDP_LANDING_DIR, CDP_WAREHOUSE, CDP_AS_OF, CDP_DBT_TARGET and CDP_SPARK_WAREHOUSE."""
    return Settings(
        landing_dir=_absolute(os.environ.get("CDP_LANDING_DIR", "data/landing")),
        warehouse=_absolute(os.environ.get("CDP_WAREHOUSE", "data/warehouse.duckdb")),
        as_of=parse_as_of(os.environ.get("CDP_AS_OF")),
        dbt_target=os.environ.get("CDP_DBT_TARGET", "duckdb"),
        spark_warehouse=_absolute(os.environ.get("CDP_SPARK_WAREHOUSE", "data/spark-warehouse")),
    )
