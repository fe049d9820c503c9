"""dbt on its own (`cdp load` then `dbt build`, no Dagster) and a pipeline run on a partial source set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from engine_support.pipeline import pipeline_env, target_env
from orchestration.ingestion.contract import SOURCES, SOURCES_BY_NAME
from orchestration.ingestion.target import load_landing_into
from orchestration.warehouse import open_warehouse
from engine_support.project import project_copy

BIN = Path(sys.executable).parent
# README, "dbt on its own": the three commands once .venv is installed, as a user types them
README_COMMANDS = (["cdp", "prepare"], ["cdp", "load"],
                   ["dbt", "build", "--exclude-resource-type", "unit_test", "--profiles-dir",
                    "profiles"])
PREDICTION_COLUMNS = ("p_alive", "expected_purchases_90d", "expected_purchases_365d",
                      "predicted_clv_365d", "churn_risk")
ORDERS_ONLY = ("shop_orders", "shop_order_lines")


def user_env(copy: Path, warehouse: Path, landing: Path) -> dict[str, str]:
    """A user's shell in the project copy: no CDP_* of this session, the copy's package first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_")}
    env.update({"CDP_WAREHOUSE": str(warehouse), "CDP_LANDING_DIR": str(landing),
                "CDP_DBT_TARGET": "duckdb", "PYTHONPATH": str(copy)})
    return env


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def orders_only_landing(sample_landing: Path, out: Path) -> Path:
    """The sample landing's shop_orders* and shop_order_lines* files, nothing else."""
    out.mkdir()
    for path in sample_landing.iterdir():
        if path.is_file() and path.name.startswith(ORDERS_ONLY):
            shutil.copy(path, out / path.name)
    assert sorted(p.name for p in out.iterdir()) == ["shop_order_lines.csv", "shop_orders.csv"]
    return out


@pytest.mark.slow
def test_dbt_builds_on_its_own_after_cdp_load(tmp_path: Path, sample_landing: Path) -> None:
    copy = project_copy(tmp_path)
    warehouse = tmp_path / "warehouse.duckdb"
    env = user_env(copy, warehouse, sample_landing)

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert all(f".venv/bin/{' '.join(command)}\n" in readme for command in README_COMMANDS)
    prepared, loaded, built = (run([str(BIN / command[0]), *command[1:]], copy, env)
                               for command in README_COMMANDS)
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-3000:]
    assert loaded.returncode == 0, loaded.stdout[-3000:] + loaded.stderr[-3000:]
    assert "shop_orders: 1 file(s) loaded" in loaded.stdout
    assert "phone numbers:" in loaded.stdout
    assert built.returncode == 0, built.stdout[-6000:]
    assert "ERROR=0" in built.stdout
    assert (copy / "target" / "run_results.json").exists()  # dbt ran in the copy

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("select count(*) from main_marts.customers").fetchone()[0] > 0
        assert not con.execute("select count(*) from information_schema.tables "
                               "where table_schema = 'predictions'").fetchone()[0]
        nulls = ", ".join(f"count({c})" for c in PREDICTION_COLUMNS)
        rows, *non_null = con.execute(
            f"select count(*), {nulls} from main_intermediate.int_customers_segment_inputs"
        ).fetchone()
    finally:
        con.close()
    assert rows > 0
    assert non_null == [0] * len(PREDICTION_COLUMNS)  # the prediction asset never ran


@pytest.mark.slow
def test_cdp_load_fails_loudly_on_a_bad_file_and_loads_the_rest(
        tmp_path: Path, sample_landing: Path) -> None:
    landing = orders_only_landing(sample_landing, tmp_path / "landing")
    (landing / "shop_order_lines.csv").write_text("not_a_contract_column\nx\n")
    env = user_env(Path.cwd(), tmp_path / "warehouse.duckdb", landing)
    env.pop("PYTHONPATH")

    result = run([str(BIN / "cdp"), "load"], Path.cwd(), env)
    assert result.returncode == 1
    assert "error: cdp load: 1 landing source(s) failed" in result.stderr
    assert "shop_order_lines.csv" in result.stderr
    assert "shop_orders: 1 file(s) loaded" in result.stdout
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from raw.shop_orders").fetchone()[0] > 0
        assert con.execute("select count(*) from raw.shop_order_lines").fetchone()[0] == 0
    finally:
        con.close()


def test_a_load_of_some_sources_creates_every_raw_table_empty_as_a_loaded_one(
        tmp_path: Path, sample_landing: Path) -> None:
    landing = orders_only_landing(sample_landing, tmp_path / "landing")
    full = tmp_path / "full.duckdb"
    with target_env({"CDP_WAREHOUSE": str(full), "CDP_DBT_TARGET": "duckdb"}):
        wh = open_warehouse("duckdb", full)
        try:
            load_landing_into(sample_landing, wh, SOURCES)
            loaded_columns = {s.name: wh.columns(f"raw.{s.name}") for s in SOURCES}
        finally:
            wh.close()
        partial = tmp_path / "partial.duckdb"
        wh = open_warehouse("duckdb", partial)
        try:
            load_landing_into(landing, wh, [SOURCES_BY_NAME["shop_orders"]])
        finally:
            wh.close()
    con = duckdb.connect(str(partial), read_only=True)
    try:
        tables = {row[0]: row[1] for row in con.execute(
            "select table_name, estimated_size from duckdb_tables() where schema_name = 'raw'"
        ).fetchall()}
        columns = {s.name: [r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'raw' "
            "and table_name = ? order by ordinal_position", [s.name]).fetchall()]
            for s in SOURCES}
        counts = {s.name: con.execute(f"select count(*) from raw.{s.name}").fetchone()[0]
                  for s in SOURCES}
    finally:
        con.close()
    assert set(tables) >= {s.name for s in SOURCES}
    assert columns == loaded_columns  # contract and loader columns, as a loaded table has them
    assert counts["shop_orders"] > 0
    assert {name: n for name, n in counts.items() if name != "shop_orders"} == {
        s.name: 0 for s in SOURCES if s.name != "shop_orders"}


@pytest.mark.slow
def test_a_pipeline_run_on_orders_alone_builds_identity_and_says_what_was_absent(
        tmp_path: Path, sample_landing: Path) -> None:
    landing = orders_only_landing(sample_landing, tmp_path / "landing")
    env = pipeline_env(tmp_path, landing, "duckdb", {})
    env.pop("DAGSTER_HOME")  # an ephemeral instance

    result = run([sys.executable, "-m", "orchestration.cli", "run"], Path.cwd(), env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = run([sys.executable, "-m", "orchestration.cli", "summary"], Path.cwd(), env)
    assert summary.returncode == 0, summary.stderr[-3000:]

    # `cdp run` ends with the inputs it found, and `cdp summary` lists them the same way
    assert result.stdout.count("Inputs (rows in raw per landing source):") == 1
    def input_rows(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.endswith(" rows")
                and line.split()[1:2] in (["present"], ["absent"])]

    assert input_rows(result.stdout) == input_rows(summary.stdout) != []
    inputs = {line.split()[0]: line.split()[1:3] for line in result.stdout.splitlines()
              if line.startswith("  ") and len(line.split()) == 4 and line.endswith(" rows")
              and line.split()[1] in ("present", "absent")}
    con = duckdb.connect(env["CDP_WAREHOUSE"], read_only=True)
    try:
        raw = {s.name: con.execute(f"select count(*) from raw.{s.name}").fetchone()[0]
               for s in SOURCES}
        customers = con.execute("select count(*) from main_marts.customers").fetchone()[0]
        identified = con.execute(
            "select count(distinct customer_id) from main_marts.customer_identities").fetchone()[0]
        identifier_types = {row[0] for row in con.execute(
            "select distinct identifier_type from main_marts.customer_identities").fetchall()}
        features = con.execute(  # web columns NULL without Segment, purchases from the orders
            "select count(last_web_seen_at), count(first_purchase_at), count(top_category) "
            "from main_marts.customer_features").fetchone()
        names = con.execute("select count(first_name) from main_marts.customers").fetchone()[0]
    finally:
        con.close()
    assert {name: state for name, (state, _) in inputs.items()} == {
        s.name: "present" if s.name in ORDERS_ONLY else "absent" for s in SOURCES}
    assert {name: int(n.replace(",", "")) for name, (_, n) in inputs.items()} == raw
    assert "absent: segment_identifies" in summary.stdout
    assert customers > 0 and identified == customers  # identity resolved from orders alone
    assert "email" in identifier_types  # the orders' identifiers (no CRM, no web ids)
    assert "anonymous_id" not in identifier_types
    assert features[0] == 0 and features[1] > 0 and features[2] > 0
    assert names == 0  # names come from CRM, loyalty and Segment identifies only


def pg_columns(env: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """Per raw landing table of the PostgreSQL database `env` reaches: (column, type), in order."""
    import psycopg2

    conn = psycopg2.connect(host=env["CDP_PG_HOST"], port=env["CDP_PG_PORT"], user="postgres",
                            dbname=env["CDP_PG_DATABASE"])
    try:
        with conn.cursor() as cur:
            cur.execute("select table_name, column_name, data_type from information_schema.columns"
                        " where table_schema = 'raw' order by table_name, ordinal_position")
            rows = cur.fetchall()
    finally:
        conn.close()
    names = {s.name for s in SOURCES}
    return {table: [(c, t) for name, c, t in rows if name == table]
            for table in sorted({r[0] for r in rows} & names)}


@pytest.mark.slow
def test_on_postgres_the_empty_raw_tables_are_typed_as_loaded_ones(
        tmp_path: Path, sample_landing: Path, postgres_server) -> None:
    from orchestration.ingestion.empty_tables import ensure_empty_raw_tables

    loaded_env = {**postgres_server.fresh_database("dbt_only"), "CDP_DBT_TARGET": "postgres"}
    with target_env(loaded_env):
        wh = open_warehouse("postgres")
        try:
            load_landing_into(sample_landing, wh, SOURCES)
        finally:
            wh.close()
    empty_env = {**postgres_server.fresh_database("dbt_only"), "CDP_DBT_TARGET": "postgres"}
    with target_env(empty_env):
        wh = open_warehouse("postgres")
        try:
            created = ensure_empty_raw_tables(wh)
            again = ensure_empty_raw_tables(wh)
            counts = {s.name: int(wh.scalar(f"select count(*) from raw.{s.name}"))
                      for s in SOURCES}
        finally:
            wh.close()
    assert sorted(created) == sorted(f"raw.{s.name}" for s in SOURCES) and again == []
    assert counts == {s.name: 0 for s in SOURCES}
    loaded_columns = pg_columns(loaded_env)
    assert len(loaded_columns) == len(SOURCES)
    assert pg_columns(empty_env) == loaded_columns  # names and PostgreSQL types, in order


def test_cdp_load_on_a_locked_warehouse_file_says_so(tmp_path: Path, sample_landing: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    env = user_env(Path.cwd(), warehouse, sample_landing)
    env.pop("PYTHONPATH")
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; "
                               f"con = duckdb.connect({str(warehouse)!r}); print('open', "
                               "flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        result = run([str(BIN / "cdp"), "load"], Path.cwd(), env)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert result.stderr.startswith("error: cdp load: cannot open the duckdb target: IOException")
    assert "Traceback" not in result.stderr
