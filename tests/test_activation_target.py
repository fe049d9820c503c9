"""A sync materialised with Dagster on each target engine: source, consent and state in the target."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from activation_support.http_server import LocalDestination

from orchestration.activation.__main__ import main as activation_cli
from orchestration.activation.assets import build_sync_assets
from orchestration.activation.state import RUNS, STATE
from orchestration.catalog import catalog
from orchestration.warehouse import WarehouseResource

ENGINES = ["duckdb", "postgres", "spark"]
SYNC = "crm_hook"
N = 12
GRANTED_AT = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(params=ENGINES)
def target(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> WarehouseResource:
    """The warehouse of one engine, empty; CDP_WAREHOUSE points at a file no non-DuckDB target
    may create."""
    monkeypatch.setenv("CDP_WAREHOUSE", str(tmp_path / "default.duckdb"))
    monkeypatch.setenv("CDP_DBT_TARGET", request.param)
    if request.param == "postgres":
        for key, value in request.getfixturevalue("postgres_server").fresh_database(
                "activation").items():
            monkeypatch.setenv(key, value)
        return WarehouseResource(target="postgres")
    if request.param == "spark":
        server = request.getfixturevalue("spark_thrift_server")
        for key, value in server.env.items():
            monkeypatch.setenv(key, value)
        server.drop_schemas(*{relation.split(".")[0] for relation in (
            catalog().relation("customers"), catalog().relation("customer_consents"), STATE)})
        return WarehouseResource(target="spark")
    return WarehouseResource(target="duckdb", path=str(tmp_path / "warehouse.duckdb"))


def customers(moved: str | None = None) -> pd.DataFrame:
    ids = [f"c{i:03d}" for i in range(N)]
    return pd.DataFrame({
        "customer_id": ids,
        "email": [f"user{i}@example.com" for i in range(N)],
        "city": ["Moved" if key == moved else f"City{i % 3}" for i, key in enumerate(ids)],
        "lifetime_value": [Decimal(i * 3) / 2 for i in range(N)],
        "first_seen": [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(N)],
    })


def consents(denied: str | None = None) -> pd.DataFrame:
    rows = [(f"c{i:03d}", "email_marketing", "granted", GRANTED_AT) for i in range(N)]
    if denied:
        rows.append((denied, "email_marketing", "denied", GRANTED_AT + dt.timedelta(days=30)))
    return pd.DataFrame(rows, columns=["customer_id", "purpose", "consent_status", "decided_at"])


def sync_file(tmp_path: Path, server: LocalDestination) -> Path:
    path = tmp_path / "syncs.yml"
    path.write_text(yaml.safe_dump({"syncs": [{
        "name": SYNC, "source": catalog().relation("customers"), "primary_key": "customer_id",
        "consent_purposes": ["email_marketing"], "batch_size": 5,
        "fields": {"customer_id": "customer_id", "email": {"column": "email", "transform": "upper"},
                   "city": "city", "lifetime_value": "lifetime_value",
                   "first_seen": {"column": "first_seen", "transform": "iso_date"}},
        "destination": {"type": "http", "url": f"{server.url}/hook", "timeout_seconds": 2}}]}))
    return path


def materialize(definitions: list, target: WarehouseResource) -> dict:
    result = dg.materialize(definitions, resources={"warehouse": target})
    assert result.success
    metadata = result.asset_materializations_for_node(f"activation__{SYNC}")[0].metadata
    return {name: value.value for name, value in metadata.items()}


def test_sync_sends_from_the_target_and_a_second_run_sends_nothing(
        target: WarehouseResource, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with target.open() as wh:
        wh.replace_table(catalog().relation("customers"), customers())
        wh.replace_table(catalog().relation("customer_consents"), consents())
    with LocalDestination() as server:
        path = sync_file(tmp_path, server)
        definitions = build_sync_assets(path)

        first = materialize(definitions, target)
        assert (first["rows_added"], first["rows_acknowledged"], first["batches"]) == (N, N, 3)
        assert set(server.state.records) == {f"c{i:03d}" for i in range(N)}
        assert server.state.records["c003"] == {
            "customer_id": "c003", "email": "USER3@EXAMPLE.COM", "city": "City0",
            "lifetime_value": 4.5, "first_seen": "2024-01-04"}

        requests = len(server.state.requests)
        second = materialize(definitions, target)
        assert second["rows_sent"] == 0 and len(server.state.requests) == requests

        with target.open() as wh:
            wh.replace_table(catalog().relation("customers"), customers(moved="c001"))
        third = materialize(definitions, target)
        assert (third["rows_changed"], third["rows_sent"]) == (1, 1)
        assert server.state.records["c001"]["city"] == "Moved"

        with target.open() as wh:
            wh.replace_table(catalog().relation("customer_consents"), consents(denied="c002"))
        fourth = materialize(definitions, target)
        assert (fourth["rows_removed"], fourth["rows_sent"]) == (1, 1)
        assert "c002" not in server.state.records and len(server.state.records) == N - 1

        with target.open() as wh:
            kept = {key for (key,) in wh.rows(
                f"select row_key from {STATE} where sync_name = %(s)s", {"s": SYNC})}
            statuses = [s for (s,) in wh.rows(f"select status from {RUNS} order by started_at")]
        assert kept == {f"c{i:03d}" for i in range(N)} - {"c002"}
        assert statuses == ["success"] * 4

        # The command line works on the same target: reset, then a preview shows a full re-sync.
        where = ["--config", str(path)] + (["--warehouse", target.path] if target.path else [])
        assert activation_cli(["reset", SYNC, *where]) == 0
        assert activation_cli(["preview", SYNC, *where, "--rows", "1"]) == 0
        assert '"upsert"' in capsys.readouterr().out
        with target.open() as wh:
            assert wh.scalar(f"select count(*) from {STATE}") == 0
    if target.resolved_target != "duckdb":
        assert not (tmp_path / "default.duckdb").exists()
