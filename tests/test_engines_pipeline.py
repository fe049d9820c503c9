"""The whole `cdp run` on PostgreSQL (pgserver) and on Spark (a local Thrift server): every asset
runs on the target, nothing lands in a DuckDB file, and the answers are DuckDB's.

Per engine, two runs of the real command on one fresh database: (1) the sample landing folder,
compared with the shared DuckDB run of the same folder (identities, customer ids, predictions to
1e-6); (2) the same folder plus an erasure request for one of its people: afterwards no table of
the target holds any of the person's email addresses, and the file sync sends nothing but that
person's removal (everything else it sent in the first run is unchanged).

The second run is made on PostgreSQL only: on Spark it took ~7 of the suite's minutes, and the
erasure on Spark is covered step by step by tests/test_privacy_targets.py and
tests/test_activation_target.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from engine_support.pipeline import PipelineRuns, pipeline_env, request_erasure, target_env
from orchestration.catalog import catalog
from orchestration.warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.slow

IDENTITY_SQL = "select customer_id, identifier_type, identifier_value from {customer_identities}"
# The golden profile: survivorship winners with their provenance, and the order figures.
PROFILE_SQL = ("select customer_id, first_name, first_name_source, last_name, primary_email, "
               "primary_email_source, primary_phone, city, country_code, loyalty_tier, "
               "identifier_count, source_count, sources_seen, order_count, online_revenue, "
               "store_revenue from {customers}")
PREDICTION_COLUMNS = ["p_alive", "expected_purchases_90d", "expected_purchases_365d",
                      "predicted_clv_90d", "predicted_clv_365d", "churn_risk"]


@dataclass
class EngineRuns:
    target: str
    runs: PipelineRuns
    first: dict[str, object]
    first_files: list[dict]
    second_files: list[dict]
    erased_customer_id: str
    erased_emails: list[str]
    leftovers: dict[str, int]
    erased: bool = True


def relation(name: str) -> str:
    """A dbt model by name, or `source.table` of a dbt source (the catalog of the current env)."""
    if "." in name:
        return catalog().source(*name.split("."))
    return catalog().relation(name)


def query(env: dict[str, str], target: str, sql_template: str, **models: str) -> pd.DataFrame:
    with target_env(env):
        names = {key: relation(model) for key, model in models.items()}
        wh = open_warehouse(target)
        try:
            return wh.query(sql_template.format(**names))
        finally:
            wh.close()


def target_tables(wh: Warehouse, target: str) -> list[str]:
    """Every table and view the run left in the target's CDP schemas."""
    if target == "postgres":
        rows = wh.rows("select table_schema || '.' || table_name from information_schema.tables "
                       "where table_schema not in ('pg_catalog', 'information_schema')")
        return [r[0] for r in rows]
    tables = []
    for (schema,) in wh.rows("show schemas"):
        if schema == "default":
            continue
        for row in wh.rows(f"show tables in {schema}"):
            if not row[-1] if isinstance(row[-1], bool) else True:
                tables.append(f"{schema}.{row[1]}")
    return tables


def leftovers(env: dict[str, str], target: str, values: list[str]) -> dict[str, int]:
    """{table.column: rows holding one of the values} over every column of every table."""
    found: dict[str, int] = {}
    needles = [v.lower() for v in values]
    with target_env(env):
        wh = open_warehouse(target)
        try:
            for table in target_tables(wh, target):
                frame = wh.query(f"select * from {table}")
                for column in frame.columns:
                    text = frame[column].astype("string").str.lower()
                    hits = sum(int(text.str.contains(n, regex=False, na=False).sum())
                               for n in needles)
                    if hits:
                        found[f"{table}.{column}"] = hits
        finally:
            wh.close()
    return found


def sent_files(env: dict[str, str], since: set[Path]) -> tuple[list[dict], set[Path]]:
    folder = Path(env["CDP_ACTIVATION_DIR"]) / "files"
    files = set(folder.rglob("*.jsonl")) if folder.exists() else set()
    rows = [json.loads(line) for path in sorted(files - since)
            for line in path.read_text().splitlines() if line.strip()]
    return rows, files


def engine_runs(target: str, out: Path, landing_source: Path, extra: dict[str, str],
                erase: bool = True) -> EngineRuns:
    landing = out / "landing"
    shutil.copytree(landing_source, landing, ignore=shutil.ignore_patterns("_ground_truth"))
    runs = PipelineRuns(env=pipeline_env(out, landing, target, extra))
    runs.run()
    first = {
        "identities": query(runs.env, target, IDENTITY_SQL, customer_identities="customer_identities"),
        "predictions": query(runs.env, target, "select * from {p}",
                             p="predictions.customer_predictions"),
        "profiles": query(runs.env, target, PROFILE_SQL, customers="customers"),
        "warehouse_file": runs.warehouse_file.exists(),
    }
    first_files, seen = sent_files(runs.env, set())
    identities = first["identities"]
    emails = identities[identities["identifier_type"] == "email"]
    person = str(sorted(emails["customer_id"].astype(str))[0])
    erased = sorted(emails.loc[emails["customer_id"].astype(str) == person, "identifier_value"])
    if not erase:
        return EngineRuns(target=target, runs=runs, first=first, first_files=first_files,
                          second_files=[], erased_customer_id=person, erased_emails=list(erased),
                          leftovers={}, erased=False)
    request_erasure(landing, erased[0])
    runs.run()
    second_files, _ = sent_files(runs.env, seen)
    return EngineRuns(target=target, runs=runs, first=first, first_files=first_files,
                      second_files=second_files, erased_customer_id=person,
                      erased_emails=list(erased),
                      leftovers=leftovers(runs.env, target, list(erased)))


@pytest.fixture(scope="module")
def duckdb_answers(sample_pipeline_run: dict[str, str]) -> dict[str, pd.DataFrame]:
    with target_env(sample_pipeline_run):
        cat = catalog()
        con = duckdb.connect(sample_pipeline_run["CDP_WAREHOUSE"], read_only=True)
        try:
            return {
                "identities": con.execute(IDENTITY_SQL.format(
                    customer_identities=cat.relation("customer_identities"))).df(),
                "predictions": con.execute(
                    f"select * from {cat.source('predictions', 'customer_predictions')}").df(),
                "profiles": con.execute(PROFILE_SQL.format(
                    customers=cat.relation("customers"))).df(),
            }
        finally:
            con.close()


@pytest.fixture(scope="module", params=["postgres", "spark"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           sample_landing: Path) -> Iterator[EngineRuns]:
    if request.param == "postgres":
        extra = request.getfixturevalue("postgres_server").fresh_database("cdp_run")
    else:
        server = request.getfixturevalue("spark_thrift_server")
        server.drop_all_schemas()  # other tests of the session used this server
        extra = dict(server.env)
    yield engine_runs(request.param, tmp_path_factory.mktemp(f"run_{request.param}"),
                      sample_landing, extra, erase=request.param == "postgres")


def as_sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.astype({k: "string" for k in keys}).sort_values(keys).reset_index(drop=True)


def test_no_duckdb_warehouse_file_is_created(engine: EngineRuns) -> None:
    assert engine.first["warehouse_file"] is False
    assert not engine.runs.warehouse_file.exists()


def test_identities_and_customer_ids_are_duckdbs(engine: EngineRuns,
                                                 duckdb_answers: dict[str, pd.DataFrame]) -> None:
    keys = ["identifier_type", "identifier_value", "customer_id"]
    ours = as_sorted(engine.first["identities"][keys], keys)
    theirs = as_sorted(duckdb_answers["identities"][keys], keys)
    assert len(ours) > 100
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)


def test_golden_profiles_are_duckdbs(engine: EngineRuns,
                                     duckdb_answers: dict[str, pd.DataFrame]) -> None:
    ours = as_sorted(engine.first["profiles"], ["customer_id"])
    theirs = as_sorted(duckdb_answers["profiles"], ["customer_id"])
    assert len(ours) == len(theirs) > 100
    for column in theirs.columns:
        if column in ("online_revenue", "store_revenue"):
            a = pd.to_numeric(ours[column]).fillna(0).to_numpy(dtype=float)
            b = pd.to_numeric(theirs[column]).fillna(0).to_numpy(dtype=float)
            assert abs(a - b).max() <= 1e-6, column
        else:
            a = ours[column].astype("string").fillna("<null>").tolist()
            b = theirs[column].astype("string").fillna("<null>").tolist()
            assert a == b, column


def test_predictions_are_duckdbs_to_1e_6(engine: EngineRuns,
                                         duckdb_answers: dict[str, pd.DataFrame]) -> None:
    ours = as_sorted(engine.first["predictions"], ["customer_id"])
    theirs = as_sorted(duckdb_answers["predictions"], ["customer_id"])
    assert list(ours["customer_id"]) == list(theirs["customer_id"]) and len(ours) > 50
    for column in PREDICTION_COLUMNS:
        a = pd.to_numeric(ours[column]).to_numpy(dtype=float)
        b = pd.to_numeric(theirs[column]).to_numpy(dtype=float)
        assert abs(a - b).max() <= 1e-6, column


def test_the_first_run_synced_from_the_target(engine: EngineRuns) -> None:
    sent = {str(row.get("customer_id")) for row in engine.first_files}
    assert engine.erased_customer_id in sent
    assert len(sent) == len(engine.first["identities"]["customer_id"].unique())


def erased_run(engine: EngineRuns) -> EngineRuns:
    if not engine.erased:
        pytest.skip(f"no erasure run on {engine.target} (module docstring)")
    return engine


def test_the_second_run_sends_only_the_erased_persons_removal(engine: EngineRuns) -> None:
    engine = erased_run(engine)
    assert engine.second_files, "the erasure was never sent to the destination"
    assert all(engine.erased_customer_id in json.dumps(row) for row in engine.second_files), \
        engine.second_files[:3]


def test_an_erasure_reaches_every_table_of_the_target(engine: EngineRuns) -> None:
    engine = erased_run(engine)
    assert engine.erased_emails
    assert engine.leftovers == {}
