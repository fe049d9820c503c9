"""CDP_DUCKDB_MEMORY_LIMIT / _THREADS / _TEMP_DIRECTORY reach dbt's and the Python assets' DuckDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine_support.project import project_copy
from orchestration.warehouse import WarehouseResource
from orchestration.warehouse.duckdb_limits import duckdb_limits

BIN = Path(sys.executable).parent
SETTINGS_SQL = ("select current_setting('memory_limit') as memory_limit, "
                "current_setting('threads') as threads, "
                "current_setting('temp_directory') as temp_directory")


def limits_env(spill: Path) -> dict[str, str]:
    return {"CDP_DUCKDB_MEMORY_LIMIT": "1GiB", "CDP_DUCKDB_THREADS": "1",
            "CDP_DUCKDB_TEMP_DIRECTORY": str(spill)}


def test_python_warehouse_connection_gets_the_limits_and_spills_under_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spill = tmp_path / "spill"
    for key, value in limits_env(spill).items():
        monkeypatch.setenv(key, value)
    resource = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"), target="duckdb")
    with resource.open() as wh:
        memory, threads, temp = wh.rows(SETTINGS_SQL)[0]
        assert (memory, threads) == ("1.0 GiB", 1)
        assert Path(temp).parent == spill and Path(temp).name.startswith(f"duckdb-{os.getpid()}-")
        # a sort larger than a 20 MiB limit finishes by spilling into that folder (DuckDB makes
        # it on its first spill and removes it on close)
        assert not Path(temp).exists()
        wh.execute("set memory_limit = '20MiB'")
        wh.execute("set threads = 1")
        assert wh.scalar("select count(*) from (select md5(range::varchar) as v, range as k "
                         "from range(600000) order by v)") == 600_000
        assert Path(temp).is_dir()
        # a second session of this process shares the open database and keeps its spill folder
        with resource.open() as again:
            assert again.scalar("select current_setting('temp_directory')") == temp


def test_unset_variables_keep_duckdb_defaults_and_a_bad_thread_count_is_named() -> None:
    assert duckdb_limits({}) == {}
    assert duckdb_limits({"CDP_DUCKDB_MEMORY_LIMIT": " 4GiB "}) == {"memory_limit": "4GiB"}
    with pytest.raises(ValueError, match="CDP_DUCKDB_THREADS"):
        duckdb_limits({"CDP_DUCKDB_THREADS": "two"})


@pytest.mark.slow
def test_dbt_connection_gets_the_limits(tmp_path: Path) -> None:
    copy = project_copy(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_")}
    env.update({"CDP_WAREHOUSE": str(tmp_path / "warehouse.duckdb"), "CDP_DBT_TARGET": "duckdb",
                "PYTHONPATH": str(copy), **limits_env(tmp_path / "spill")})
    shown = subprocess.run([str(BIN / "dbt"), "show", "--profiles-dir", "profiles", "--inline",
                            SETTINGS_SQL, "--output", "json", "--log-format", "text"],
                           cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-3000:]
    row = json.loads(shown.stdout[shown.stdout.index("{"):shown.stdout.rindex("}") + 1])["show"][0]
    assert (row["memory_limit"], row["threads"]) == ("1.0 GiB", 1)
    assert Path(row["temp_directory"]).parent == tmp_path / "spill"


def test_the_dbt_plugin_imports_neither_pandas_nor_dagster() -> None:
    """Every dbt process opening the DuckDB file loads the plugin: when it pulled pandas and
    Dagster through orchestration.warehouse, each dbt invocation paid 3.5 s of imports."""
    code = ("import sys, orchestration.warehouse.dbt_duckdb_limits; "
            "print(sorted(m for m in ('pandas', 'dagster', 'pyarrow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "[]"
