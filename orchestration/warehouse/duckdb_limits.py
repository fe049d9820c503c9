"""DuckDB limits (memory_limit, threads, temp_directory) from CDP_DUCKDB_*, for every connection.

One home for the rule: the Python assets' warehouse connection (`DuckDBWarehouse`) applies
`apply_limits`, and dbt's connection gets the same through the dbt-duckdb plugin in
orchestration/warehouse/dbt_duckdb_limits.py, which the `duckdb` output of profiles/profiles.yml
declares. Unset variables keep DuckDB's own
defaults: memory_limit 80 % of RAM, threads one per core, spill to `<database file>.tmp`.

DuckDB's limits are per database instance: the dbt process holds one, a Python step the
warehouse's (files it attaches share it), so a step's peak is about its memory_limit plus what Python itself
holds (data frames, Arrow batches). Beyond the limit DuckDB spills to temp_directory instead of
failing, for the operators that can (joins, aggregates, sorts, windows). docs/operations.md.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path

import duckdb

# setting -> the environment variable that sets it
LIMIT_VARIABLES = {
    "memory_limit": "CDP_DUCKDB_MEMORY_LIMIT",
    "threads": "CDP_DUCKDB_THREADS",
    "temp_directory": "CDP_DUCKDB_TEMP_DIRECTORY",
}
_instances = itertools.count()


def duckdb_limits(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The DuckDB settings the CDP_DUCKDB_* variables ask for (only those set).

    CDP_DUCKDB_TEMP_DIRECTORY names a folder shared by every process of a run; each DuckDB
    instance spills into a sub-folder of its own (`duckdb-<pid>-<n>`), because two instances
    writing temp files of the same name into one folder would overwrite each other's."""
    env = os.environ if environ is None else environ
    limits = {name: env[var].strip() for name, var in LIMIT_VARIABLES.items()
              if env.get(var, "").strip()}
    if "threads" in limits and not (limits["threads"].isdigit() and int(limits["threads"]) > 0):
        raise ValueError(f"CDP_DUCKDB_THREADS must be a whole number of threads (1 or more), "
                         f"got {limits['threads']!r}")
    if "temp_directory" in limits:
        folder = Path(limits["temp_directory"]).expanduser().resolve()
        limits["temp_directory"] = str(folder / f"duckdb-{os.getpid()}-{next(_instances)}")
    return limits


def apply_limits(con: duckdb.DuckDBPyConnection,
                 environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """SET the CDP_DUCKDB_* limits on `con` (instance-wide settings in DuckDB); returns them.

    SET after connect, not connect(config=...): DuckDB refuses a second connection of this
    process to an open database file with a different configuration."""
    limits = duckdb_limits(environ)
    if "temp_directory" in limits:
        folder = Path(limits["temp_directory"]).parent
        current = con.execute("select current_setting('temp_directory')").fetchall()[0][0]
        if current and Path(current).parent == folder:
            # a second connection of this process to an open database shares its instance,
            # which already spills there (DuckDB refuses to move a temp folder in use)
            del limits["temp_directory"]
        folder.mkdir(parents=True, exist_ok=True)
    for name, value in limits.items():
        try:
            con.execute(f"set {name} = $value", {"value": value})
        except duckdb.Error as error:
            raise ValueError(f"{LIMIT_VARIABLES[name]}={value!r}: DuckDB refuses "
                             f"{name} = {value!r} ({error})") from error
    return limits

