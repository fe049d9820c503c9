"""Sync config validation and the Dagster assets/checks built from it (real materialisation)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from activation_support.warehouse import customers_warehouse

from orchestration.activation.assets import build_sync_assets, build_sync_schedules
from orchestration.activation.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def sync(**overrides: object) -> dict:
    base = {"name": "to_files", "source": "main_marts.customers", "primary_key": "customer_id",
            "fields": {"customer_id": "customer_id", "email": "email"},
            "destination": {"type": "files", "url": "/tmp/never", "format": "csv"}}
    base.update(overrides)
    return base


def test_config_errors_name_the_file_and_the_field(tmp_path) -> None:
    path = write(tmp_path / "syncs.yml", {"syncs": [
        sync(), sync(name="bad", mode="sometimes", batch_size=0,
                     destination={"type": "postgres", "dsn": "x"})]})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert f"{path}: syncs[1] (bad).mode:" in message
    assert f"{path}: syncs[1] (bad).batch_size:" in message
    assert f"{path}: syncs[1] (bad).destination.table: Field required" in message
    assert "syncs[0]" not in message


def test_config_rejects_unknown_keys_and_mismatched_destinations(tmp_path) -> None:
    path = write(tmp_path / "syncs.yml", {"syncs": [sync(primary_kye="x")]})
    with pytest.raises(ConfigError, match=r"syncs\[0\] \(to_files\)\.primary_kye: Extra inputs"):
        load_config(path)
    path = write(tmp_path / "syncs.yml", {"syncs": [sync(destination={
        "type": "hubspot"}, mode="mirror")]})
    with pytest.raises(ConfigError, match="hubspot destination supports mode upsert"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yml")


def test_the_example_syncs_file_is_valid(monkeypatch) -> None:
    monkeypatch.delenv("CDP_ACTIVATION_POSTGRES_DSN", raising=False)
    config = load_config(DEFAULT_CONFIG_PATH)
    assert config.syncs
    active = [s.name for s in config.syncs if s.is_active]
    assert "customers_to_postgres_crm" not in active  # only when a DSN is configured
    assert build_sync_assets(DEFAULT_CONFIG_PATH)


def test_materialize_sync_asset_and_check(tmp_path) -> None:
    with customers_warehouse(tmp_path, 20):
        warehouse = tmp_path / "warehouse.duckdb"
    path = write(tmp_path / "syncs.yml", {"syncs": [sync(destination={
        "type": "files", "url": str(tmp_path / "out"), "format": "csv"}, schedule="0 6 * * *")]})
    definitions = build_sync_assets(path)
    asset, check = definitions
    assert asset.key == dg.AssetKey(["activation", "to_files"])
    assert dg.AssetKey(["customers"]) in asset.dependency_keys
    assert asset.op.pool == WAREHOUSE_POOL
    assert [s.cron_schedule for s in build_sync_schedules(path)] == ["0 6 * * *"]

    resources = {"warehouse": WarehouseResource(path=str(warehouse))}
    result = dg.materialize(definitions, resources=resources)
    assert result.success
    metadata = result.asset_materializations_for_node("activation__to_files")[0].metadata
    assert metadata["rows_added"].value == 20 and metadata["rows_failed"].value == 0
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.passed

    again = dg.materialize(definitions, resources=resources)
    metadata = again.asset_materializations_for_node("activation__to_files")[0].metadata
    assert metadata["rows_sent"].value == 0


def test_failing_sync_fails_the_asset(tmp_path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()  # no source table at all
    path = write(tmp_path / "syncs.yml", {"syncs": [sync()]})
    result = dg.materialize(build_sync_assets(path), raise_on_error=False,
                            resources={"warehouse": WarehouseResource(path=str(warehouse))})
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "source relation main_marts.customers does not exist" in str(failure.event_specific_data)


def test_sync_does_not_run_after_a_failed_blocking_upstream_check(tmp_path) -> None:
    with customers_warehouse(tmp_path, 5):
        warehouse = tmp_path / "warehouse.duckdb"
    path = write(tmp_path / "syncs.yml", {"syncs": [sync(destination={
        "type": "files", "url": str(tmp_path / "out"), "format": "csv"})]})

    @dg.asset(name="customers")
    def customers() -> None:
        return None

    @dg.asset_check(asset=customers, blocking=True)
    def customer_id_unique() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, description="duplicated customer_id")

    definitions = [customers, customer_id_unique, *build_sync_assets(path)]
    resources = {"warehouse": WarehouseResource(path=str(warehouse))}
    with dg.instance_for_test() as instance:
        same_run = dg.materialize(definitions, resources=resources, instance=instance,
                                  raise_on_error=False)
        assert not same_run.success
        assert not same_run.asset_materializations_for_node("activation__to_files")

        later = dg.materialize(definitions, resources=resources, instance=instance,
                               selection=[dg.AssetKey(["activation", "to_files"])],
                               raise_on_error=False)
        assert not later.success
        failure = [e for e in later.all_events if e.event_type_value == "STEP_FAILURE"][0]
        assert "failing blocking checks ['customer_id_unique']" in str(
            failure.event_specific_data)
    assert not (tmp_path / "out").exists()


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.error.message


def test_one_invalid_sync_fails_only_its_own_asset(tmp_path) -> None:
    path = write(tmp_path / "syncs.yml", {"syncs": [
        sync(schedule="0 6 * * *"), sync(name="typo", mode="sometimes"),
        sync(name="other", schedule="0 7 * * *")]})
    built = build_sync_assets(path)
    keys = {key.to_user_string() for asset in built for key in asset.keys}
    assert keys == {"activation/to_files", "activation/typo", "activation/other"}
    assert sorted(s.name for s in build_sync_schedules(path)) == [
        "activation_other_schedule", "activation_to_files_schedule"]
    broken = next(a for a in built if dg.AssetKey(["activation", "typo"]) in a.keys)
    result = dg.materialize([broken], raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "sync typo is not run: its declaration is invalid" in message
    assert f"{path}: syncs[1] (typo).mode:" in message


@pytest.mark.parametrize("text, where", [
    ("syncs:\n  - name: a\n    fields: [x\n  - name: b\n", "line 4"),  # unclosed list
    ("syncs:\n  - name: a\n\tsource: x\n", "line 3"),                   # a tab
    ("- just\n- a list\n", "expected a mapping"),                      # no `syncs:` at all
])
def test_an_unreadable_syncs_file_is_one_failing_placeholder(tmp_path, text, where) -> None:
    path = tmp_path / "syncs.yml"
    path.write_text(text)
    built = build_sync_assets(path)
    assert [key.to_user_string() for asset in built for key in asset.keys] == [
        "activation/syncs_file_invalid"]
    assert build_sync_schedules(path) == []
    result = dg.materialize(built, raise_on_error=False)
    message = failure_message(result)
    assert "no sync is run: the sync file is invalid" in message
    assert str(path) in message and where in message
