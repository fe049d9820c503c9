"""Privacy requests executed by the real Dagster asset on the dbt target warehouse (issue 17).

The sample landing folder (300 customers) is loaded into a DuckDB file, replicated into a fresh
pgserver database, and the dbt project built there. An erasure and an access request then run
through `privacy_requests_executed` with CDP_DBT_TARGET=postgres: afterwards no table or view of
the target holds the erased person's identifiers (every column of every table scanned), the
access export holds the other person's rows, no DuckDB warehouse file was created, and a second
run changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from orchestration import catalog as catalog_module
from orchestration import privacy
from orchestration.ingestion import load_landing
from orchestration.ingestion.contract import SOURCES_BY_NAME
from orchestration.privacy.sql import list_relations, placeholders, text
from orchestration.replication import replicate
from orchestration.settings import PROFILES_DIR, PROJECT_DIR
from orchestration.warehouse import WarehouseResource, open_warehouse
from orchestration.warehouse.base import Warehouse
from tests.test_privacy import person_with_email_and_account

pytest.importorskip("pgserver")

RAW_ID_COLUMNS = ("email", "phone", "user_id", "anonymous_id", "shop_customer_id", "loyalty_id",
                  "contact_id", "requester_email", "requester_phone", "identifier_value")


@pytest.fixture(scope="module")
def raw_duckdb(tmp_path_factory: pytest.TempPathFactory, sample_landing: Path) -> Path:
    """The loader's DuckDB file with raw.* of the sample landing folder (what is replicated)."""
    path = tmp_path_factory.mktemp("privacy_raw") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("set TimeZone = 'UTC'")
        load_landing(sample_landing, con)
    return path


def dbt_build(env: dict[str, str], workdir: Path, target: str) -> Path:
    """Models and seeds (no tests, no predictions) on `target`; returns its manifest."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "build", "--exclude",
         "int_customer_predictions+", "resource_type:test", "resource_type:unit_test",
         "--target", target, "--project-dir", str(PROJECT_DIR), "--profiles-dir",
         str(PROFILES_DIR), "--target-path", str(workdir / "target"), "--log-path",
         str(workdir / "logs"), "--quiet"],
        env=env, cwd=workdir, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir / "target" / "manifest.json"


def person_values(wh: Warehouse, email: str) -> set[str]:
    """Every identifier of the person's cluster, normalised and as spelled in raw, and the ids."""
    cluster = privacy.resolve_cluster(wh, "email", email)
    assert cluster.customer_ids, "the person has no profile"
    values = set(cluster.values)
    for source in privacy.identified_sources():
        ids = privacy.cluster_record_ids(wh, source, cluster)
        if not ids or source.source == "privacy_requests":
            continue
        marks, params = placeholders(ids, "r")
        present = set(wh.columns(source.raw_table))
        for column in [c for c in SOURCES_BY_NAME[source.source].known_columns
                       if c in RAW_ID_COLUMNS and c in present]:
            values |= {v for (v,) in wh.rows(
                f"select distinct {text(wh, column)} from {source.raw_table} "
                f"where {source.raw_record_id(wh)} in ({marks})", params) if v}
    return {v for v in values if len(v) >= 6}


def row_counts(wh: Warehouse) -> dict[str, int]:
    return {f"{s}.{t}": int(wh.scalar(f"select count(*) from {s}.{t}"))
            for s, t, base in list_relations(wh, ("information_schema",)) if base}


def add_requests(wh: Warehouse, requests: list[dict[str, str]]) -> None:
    """Requests as the loader lands them in raw.privacy_requests."""
    relation = privacy.sources.request_table()
    columns = wh.columns(relation)
    rows = [{**r, "_source_file": "privacy_requests/extra.csv", "_source_line": n + 1,
             "_loaded_at": dt.datetime(2026, 10, 3)} for n, r in enumerate(requests)]
    types = {"_source_line": pa.int64(), "_loaded_at": pa.timestamp("us")}
    wh.append(relation, pa.table({c: pa.array([r.get(c) for r in rows],
                                              types.get(c, pa.string())) for c in columns}))


def test_an_erasure_reaches_every_table_of_the_postgres_target(
        postgres_server, raw_duckdb: Path, sample_landing: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**postgres_server.fresh_database("privacy"), "CDP_DBT_TARGET": "postgres",
           "CDP_WAREHOUSE": str(raw_duckdb), "CDP_PRIVACY_EXPORT_DIR": str(tmp_path / "exports")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CDP_AS_OF", raising=False)
    replicate(raw_duckdb, "postgres")
    manifest = dbt_build({**os.environ}, tmp_path, "postgres")
    # relation names as dbt built them on this target (public_marts..., not main_marts...)
    monkeypatch.setattr(catalog_module, "manifest_file", lambda: manifest)
    email, user_id = person_with_email_and_account(sample_landing)
    with closing(open_warehouse("postgres")) as wh:
        values = person_values(wh, email)
        marks, params = placeholders(privacy.resolve_cluster(wh, "email", email).customer_ids,
                                     "c")
        other = wh.scalar(  # someone else's email, for the access request
            "select min(identifier_value) from "
            f"{catalog_module.catalog().relation('customer_identities')} "
            f"where identifier_type = 'email' and customer_id not in ({marks})", params)
        add_requests(wh, [
            {"request_id": "dsr-pg-erase", "identifier_type": "user_id",
             "identifier_value": user_id, "request_type": "erasure",
             "received_at": "2026-10-02T10:00:00Z"},
            {"request_id": "dsr-pg-access", "identifier_type": "email",
             "identifier_value": other.upper(), "request_type": "access",
             "received_at": "2026-10-01T10:00:00Z"}])
        assert privacy.find_traces(wh, values), "the person is not in the target to begin with"

    # no DuckDB file may be opened for a postgres target
    monkeypatch.setenv("CDP_WAREHOUSE", str(tmp_path / "never.duckdb"))
    result = dg.materialize([privacy.privacy_requests_executed],
                            resources={"warehouse": WarehouseResource()})
    assert result.success
    assert not (tmp_path / "never.duckdb").exists()

    with closing(open_warehouse("postgres")) as wh:
        statuses = dict(wh.rows(f"select request_id, status from {privacy.REQUESTS}"))
        # the sample's own requests run too; none fails, ours both finish
        assert "failed" not in statuses.values(), statuses
        assert statuses["dsr-pg-erase"] == statuses["dsr-pg-access"] == "finished"
        targets = {t: (a, n) for t, a, n in wh.rows(
            f"select target, action, rows_affected from {privacy.LOG} "
            "where request_id = 'dsr-pg-erase'")}
        assert targets["raw.shop_orders"][0] == "null_pii" and targets["raw.shop_orders"][1] > 0
        assert targets["raw.segment_identifies"][0] == "delete"
        assert targets[catalog_module.catalog().relation("customers")] == ("delete", 1)
        # every column of every table and view of the target
        assert privacy.find_traces(wh, values) == {}
        # the suppression list holds the hashes, the raw request its hash only
        assert privacy.identifier_hash(user_id) in {h for (h,) in wh.rows(
            f"select identifier_hash from {privacy.SUPPRESSION}")}
        export = json.loads((tmp_path / "exports" / "dsr-pg-access.json").read_text())
        assert len(export["customer_ids"]) >= 1
        assert catalog_module.catalog().relation("customers") in export["tables"]
        assert any(other in json.dumps(rows) for rows in export["tables"].values())
        before = row_counts(wh)
        log_rows = wh.scalar(f"select count(*) from {privacy.LOG}")

    # a second run finds nothing new to do: no table changes, no log row is added
    again = dg.materialize([privacy.privacy_requests_executed],
                           resources={"warehouse": WarehouseResource()})
    assert again.success
    with closing(open_warehouse("postgres")) as wh:
        assert row_counts(wh) == before
        assert wh.scalar(f"select count(*) from {privacy.LOG}") == log_rows


def _strings(**columns: list) -> pa.Table:
    return pa.table({name: pa.array(values, pa.int64() if name == "_source_line" else pa.string())
                     for name, values in columns.items()})


SMALL_TABLES = {
    "raw.privacy_requests": _strings(
        request_id=["r1", "r2", "r3", "r6"], identifier_type=["email", "user_id", "email", "email"],
        identifier_value=["ann@x.io", "u1", "bob@x.io", "cy@x.io"],
        request_type=["erasure", "suppression", "erasure", "access"],
        received_at=["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-06"],
        _source_file=["a.csv"] * 4, _source_line=[1, 2, 3, 6]),
    "raw.segment_identifies": _strings(
        id=["i1", "i2", "i3"], user_id=["u1", "u2", "u3"],
        email=["ANN@x.io", "bob@x.io", "cy@x.io"], _source_file=["f.csv"] * 3,
        _source_line=[1, 2, 3]),
    "raw.shop_orders": _strings(
        order_id=["o1", "o2"], shop_customer_id=[None, None], email=["ann@x.io", "cy@x.io"],
        phone=[None, None], _source_file=["o.csv"] * 2, _source_line=[1, 2]),
    "raw._load_rejects": _strings(
        source=["segment_identifies", "shop_orders", "crm_contacts"],
        _source_file=["f.csv", "o.csv", "c.csv"], _source_line=[1, 9, 1],
        raw_value=["bad", " Bob@x.io ", "kept"]),
    "main_marts.customer_identities": _strings(
        customer_id=["c1", "c1", "c2", "c2", "c3", "c3"],
        identifier_type=["email", "user_id"] * 3,
        identifier_value=["ann@x.io", "u1", "bob@x.io", "u2", "cy@x.io", "u3"]),
    "main_marts.customer_source_records": _strings(
        customer_id=["c1", "c2", "c3", "c1", "c3"],
        source=["segment_identifies"] * 3 + ["shop_orders"] * 2,
        source_record_id=["i1", "i2", "i3", "o1", "o2"]),
    "main_marts.customers": _strings(customer_id=["c1", "c2", "c3"],
                                     email=["ann@x.io", "bob@x.io", "cy@x.io"]),
}
SMALL_VIEWS = {
    "main_staging.stg_privacy__requests":
        "select request_id, identifier_type, lower(identifier_value) as identifier_value, "
        "request_type, cast(received_at as timestamp) as received_at from raw.privacy_requests",
    "main_staging.stg_segment__identifies":
        "select id as identify_id, user_id, cast(null as string) as anonymous_id, "
        "lower(email) as email, cast(null as string) as phone from raw.segment_identifies",
    "main_staging.stg_shop__orders":
        "select order_id, shop_customer_id, email, phone from raw.shop_orders",
}


def test_a_batch_of_requests_runs_on_spark(spark_thrift_server, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor's SQL on Spark (no transactions, no row-level DML): the small warehouse of
    tests/test_privacy.py built with the interface, the batch run twice."""
    for key, value in spark_thrift_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CDP_DBT_TARGET", "spark")
    monkeypatch.setenv("CDP_PRIVACY_EXPORT_DIR", str(tmp_path / "exports"))
    # the small warehouse has DuckDB's relation names (main_marts...): the catalog reads them
    monkeypatch.setattr(catalog_module, "manifest_file",
                        lambda: PROJECT_DIR / "target" / "manifest.json")
    with WarehouseResource(target="spark").open() as wh:
        # the export reads every schema: what other tests left on the shared server (views
        # over raw tables dropped here) would be in it
        spark_thrift_server.drop_schemas(*(s for (s,) in wh.rows("show schemas")
                                           if s != "default"))
        for relation, table in SMALL_TABLES.items():
            wh.replace_table(relation, table)
        wh.ensure_schema("main_staging")
        for relation, sql in SMALL_VIEWS.items():
            wh.execute(f"create view {relation} as {sql}")
        report = privacy.execute_privacy_requests(wh)
        assert [o.status for o in report.outcomes] == ["finished"] * 4, wh.rows(
            f"select request_id, status, detail from {privacy.REQUESTS}")
        assert sorted(c for (c,) in wh.rows("select customer_id from main_marts.customers")) \
            == ["c3"]
        assert wh.rows("select id from raw.segment_identifies") == [("i3",)]
        assert sorted(wh.rows("select order_id, email from raw.shop_orders")) == [
            ("o1", None), ("o2", "cy@x.io")]
        assert wh.rows("select raw_value from raw._load_rejects") == [("kept",)]
        assert all(v.startswith(privacy.HASH_PREFIX) for (v,) in wh.rows(
            "select identifier_value from raw.privacy_requests"))
        assert privacy.identifier_hash("ann@x.io") in {h for (h,) in wh.rows(
            f"select identifier_hash from {privacy.SUPPRESSION}")}
        assert privacy.find_traces(wh, {"ann@x.io", "bob@x.io"}) == {}
        export = json.loads((tmp_path / "exports" / "r6.json").read_text())
        assert export["tables"]["main_marts.customers"] == [{"customer_id": "c3",
                                                             "email": "cy@x.io"}]
        log_rows = wh.scalar(f"select count(*) from {privacy.LOG}")
        again = privacy.execute_privacy_requests(wh)
        assert again.outcomes == [] and not again.late_data
        assert wh.scalar(f"select count(*) from {privacy.LOG}") == log_rows
