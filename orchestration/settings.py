"""Runtime settings from environment variables (CDP_*), resolved to absolute paths."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROFILES_DIR = PROJECT_DIR / "profiles"


def dbt_target_path(target: str) -> Path:
    """Where `dbt parse` writes the manifest of a dbt target, relative to the project: `target/`
    for DuckDB, `target/<target>/` for the others, so a run on PostgreSQL or Spark never replaces
    the DuckDB manifest (nor its partial parse) that other processes read."""
    return Path("target") if target == "duckdb" else Path("target") / target


@dataclass(frozen=True)
class Settings:
    landing_dir: Path
    warehouse: Path
    as_of: dt.date | None
    dbt_target: str
    spark_warehouse: Path

    def env(self) -> dict[str, str]:
        """The CDP_* variables dbt reads, as absolute paths (dbt may run from a copied directory)."""
        env = {
            "CDP_LANDING_DIR": str(self.landing_dir),
            "CDP_WAREHOUSE": str(self.warehouse),
            "CDP_DBT_TARGET": self.dbt_target,
            "CDP_SPARK_WAREHOUSE": str(self.spark_warehouse),
            # dagster-dbt starts each invocation from the partial parse of this folder: the one
            # `cdp prepare` wrote for this target (another target's would be re-parsed in full).
            # A DBT_TARGET_PATH set by the user wins.
            "DBT_TARGET_PATH": os.environ.get("DBT_TARGET_PATH")
            or str(dbt_target_path(self.dbt_target)),
        }
        if self.as_of is not None:
            env["CDP_AS_OF"] = self.as_of.isoformat()
        return env

    def export_env(self) -> None:
        """Make dbt (which may run from a copied directory) see the same absolute paths."""
        os.environ.update(self.env())


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


# --- Salts --------------------------------------------------------------------------------------
# Both defaults are public (they are in this repository): fine for generated sample data, never
# for real people. docs/security.md.
PII_SALT_ENV = "CDP_PII_SALT"          # hashed PII and record ids in the BI publication
PRIVACY_SALT_ENV = "CDP_PRIVACY_SALT"  # suppression-list hashes (orchestration/privacy/, dbt)
PII_SALT_DEFAULT = "open-cdp-bi"
# What makes a landing folder sample data: tools/sample_data/ writes its ground truth here.
SAMPLE_MARKER = "_ground_truth"


def pii_salt() -> str:
    """The BI publication's salt: CDP_PII_SALT, else the public default."""
    return os.environ.get(PII_SALT_ENV) or PII_SALT_DEFAULT


def is_sample_landing(landing_dir: Path) -> bool:
    """True when the landing folder was written by the sample-data generator (it holds
    `_ground_truth/`, the generator's answer key, which real exports never have)."""
    return (landing_dir / SAMPLE_MARKER).is_dir()


def default_salt_warning(landing_dir: Path, environ: dict[str, str] | None = None) -> str | None:
    """A loud message when real (non-sample) data would be hashed with a public default salt."""
    environ = dict(os.environ if environ is None else environ)
    unset = [name for name in (PII_SALT_ENV, PRIVACY_SALT_ENV) if not environ.get(name)]
    if not unset or is_sample_landing(landing_dir):
        return None
    return (f"SECURITY WARNING: {' and '.join(unset)} not set: hashes of personal data use a "
            f"public default salt, so anyone can reverse them by hashing guesses. {landing_dir} "
            f"is not sample data (no {SAMPLE_MARKER}/ folder). Set a long random value for each, "
            "kept outside the repository (docs/security.md).")


# --- File permissions ---------------------------------------------------------------------------
PUBLICATION_MODE_ENV = "CDP_PUBLICATION_MODE"


def publication_file_mode(environ: dict[str, str] | None = None) -> int:
    """Permissions of the BI publication file: CDP_PUBLICATION_MODE (octal), default 0600.

    0640 lets a BI tool's group read it; any permission for others is refused."""
    value = (os.environ if environ is None else environ).get(PUBLICATION_MODE_ENV, "").strip()
    if not value:
        return 0o600
    try:
        mode = int(value, 8)
    except ValueError as exc:
        raise ValueError(f"{PUBLICATION_MODE_ENV} must be octal like 0600 or 0640, "
                         f"got {value!r}") from exc
    if mode & 0o007 or mode & ~0o777 or not mode & 0o400:
        raise ValueError(f"{PUBLICATION_MODE_ENV}={value}: the owner must be able to read the "
                         "file and others may not have any permission (use 0600 or 0640)")
    return mode


# --- dbt artifacts ------------------------------------------------------------------------------
DBT_TARGET_RUNS_KEPT_ENV = "CDP_DBT_TARGET_RUNS_KEPT"
DBT_TARGET_RUNS_KEPT_DEFAULT = 3


def dbt_target_runs_kept(environ: dict[str, str] | None = None) -> int:
    """Runs whose dbt target folders are kept: CDP_DBT_TARGET_RUNS_KEPT, default 3."""
    value = (os.environ if environ is None else environ).get(DBT_TARGET_RUNS_KEPT_ENV, "").strip()
    if not value:
        return DBT_TARGET_RUNS_KEPT_DEFAULT
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{DBT_TARGET_RUNS_KEPT_ENV} must be a whole number of at least 1, "
                         f"got {value!r}")
    return int(value)


# --- Run report ---------------------------------------------------------------------------------
REPORT_DIR_ENV = "CDP_REPORT_DIR"


def report_dir(environ: dict[str, str] | None = None) -> Path:
    """Folder of the static HTML report: CDP_REPORT_DIR, default `report/` beside the warehouse."""
    value = (os.environ if environ is None else environ).get(REPORT_DIR_ENV, "").strip()
    return _absolute(value) if value else load_settings().warehouse.parent / "report"
