"""Find the landing files of each contract source in the landing folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestration.ingestion.contract import LandingSource, landing_sources
from orchestration.ingestion.errors import LandingError

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)


@dataclass(frozen=True)
class LandingInventory:
    """Landing files per source, and what was found but will not be loaded."""

    files: dict[str, list[Path]]
    warnings: list[str]


def _ignored(name: str) -> bool:
    return name.startswith(("_", "."))


def file_format(path: Path) -> str | None:
    lower = path.name.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def stem(path: Path) -> str:
    lower = path.name.lower()
    for suffix in CSV_SUFFIXES[::-1] + PARQUET_SUFFIXES:  # longest first: .csv.gz before .csv
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def discover_landing(
    landing_dir: Path, sources: Sequence[LandingSource] | None = None
) -> LandingInventory:
    """Find each source's files: `<name>.csv|.csv.gz|.parquet` or any such file under `<name>/`
    (`sources`: by default the built-in and declared ones, `landing_sources()`)."""
    if not landing_dir.is_dir():
        raise LandingError(f"landing folder {landing_dir} does not exist or is not a folder")
    if sources is None:
        sources = landing_sources()
    names = {source.name for source in sources}
    files: dict[str, list[Path]] = {source.name: [] for source in sources}
    warnings: list[str] = []
    for entry in sorted(landing_dir.iterdir()):
        if _ignored(entry.name):
            continue
        relative = relative_path(landing_dir, entry)
        if entry.is_dir():
            if entry.name not in names:
                warnings.append(f"{relative}/: no source of that name in the contract, ignored")
                continue
            for path in sorted(entry.rglob("*")):
                parts = path.relative_to(entry).parts
                if any(_ignored(part) for part in parts) or not path.is_file():
                    continue
                if file_format(path) is None:
                    warnings.append(f"{relative_path(landing_dir, path)}: not .csv, .csv.gz or "
                                    ".parquet, ignored")
                    continue
                files[entry.name].append(path)
        elif entry.is_file():
            if file_format(entry) is None or stem(entry) not in names:
                warnings.append(f"{relative}: not a landing file of the contract "
                                "(<source>.csv, .csv.gz or .parquet), ignored")
                continue
            files[stem(entry)].append(entry)
    return LandingInventory(files=files, warnings=warnings)


def relative_path(landing_dir: Path, path: Path) -> str:
    return path.relative_to(landing_dir).as_posix()
