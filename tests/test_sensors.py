"""The landing-folder sensor: what it launches, when it waits, and that runs never overlap."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration.ingestion.assets import load_landing_files
from orchestration.sensors import RAW_KEYS, SENSOR_NAME, build_landing_sensor
from orchestration.warehouse import WarehouseResource

OLD = time.time() - 3600


@dg.asset(deps=[dg.AssetKey(["raw", "shop_orders"])])
def orders_model() -> None: ...


@dg.asset(deps=[orders_model])
def revenue_kpi() -> None: ...


@dg.asset(deps=[dg.AssetKey(["raw", "crm_contacts"])])
def contacts_model() -> None: ...


JOB = dg.define_asset_job("everything", selection=dg.AssetSelection.all())
DEFS = dg.Definitions(assets=[load_landing_files, orders_model, revenue_kpi, contacts_model],
                      jobs=[JOB], resources={"warehouse": WarehouseResource(path=":memory:")})


def write(path: Path, text: str = "a,b\n1,2\n", mtime: float = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


def tick(landing: Path, cursor: str | None = None, instance: dg.DagsterInstance | None = None,
         settle: float = 3.0, exclude: dg.AssetSelection | None = None):
    sensor = build_landing_sensor(JOB, landing_dir=landing, settle_seconds=settle,
                                  exclude=exclude)
    context = dg.build_sensor_context(instance=instance or dg.DagsterInstance.ephemeral(),
                                      cursor=cursor, definitions=DEFS)
    return sensor(context)


def keys(result: dg.SensorResult) -> set[str]:
    (request,) = result.run_requests
    return {k.to_user_string() for k in request.asset_selection}


def test_sensor_is_named_for_what_it_does() -> None:
    sensor = build_landing_sensor(JOB, landing_dir=Path("/nonexistent"))
    assert sensor.name == SENSOR_NAME
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert "landing" in sensor.description


def test_empty_or_missing_landing_folder_skips(tmp_path: Path) -> None:
    assert isinstance(tick(tmp_path), dg.SkipReason)
    missing = tick(tmp_path / "absent")
    assert isinstance(missing, dg.SkipReason) and "does not exist" in missing.skip_message


def test_new_files_launch_loader_and_their_downstream_only(tmp_path: Path) -> None:
    write(tmp_path / "shop_orders.csv")
    write(tmp_path / "_ground_truth" / "x.csv")   # ignored, as the loader ignores it
    write(tmp_path / ".partial.csv")
    result = tick(tmp_path)
    assert isinstance(result, dg.SensorResult)
    expected_raw = {k.to_user_string() for k in RAW_KEYS}
    assert keys(result) == expected_raw | {"orders_model", "revenue_kpi"}
    (request,) = result.run_requests
    assert request.tags["cdp/landing_sources"] == "shop_orders"
    assert json.loads(result.cursor).keys() == {"shop_orders.csv"}

    # The same files again: nothing to do.
    again = tick(tmp_path, cursor=result.cursor)
    assert isinstance(again, dg.SkipReason) and "no new landing files" in again.skip_message

    # A new file in a source folder: a new run for that source only, with a different run key.
    write(tmp_path / "crm_contacts" / "2025-07-01.csv")
    second = tick(tmp_path, cursor=result.cursor)
    assert keys(second) == expected_raw | {"contacts_model"}
    assert second.run_requests[0].run_key != request.run_key
    assert set(json.loads(second.cursor)) == {"shop_orders.csv", "crm_contacts/2025-07-01.csv"}


def test_excluded_assets_are_left_to_the_daily_run(tmp_path: Path) -> None:
    write(tmp_path / "shop_orders.csv")
    result = tick(tmp_path, exclude=dg.AssetSelection.assets(revenue_kpi))
    assert "orders_model" in keys(result) and "revenue_kpi" not in keys(result)


def test_changed_file_is_picked_up(tmp_path: Path) -> None:
    path = write(tmp_path / "shop_orders.csv")
    cursor = tick(tmp_path).cursor
    write(path, "a,b\n1,2\n3,4\n")
    assert keys(tick(tmp_path, cursor=cursor)) >= {"orders_model"}


def test_waits_for_files_still_being_written(tmp_path: Path) -> None:
    write(tmp_path / "shop_orders.csv", mtime=time.time())
    result = tick(tmp_path, settle=60)
    assert isinstance(result, dg.SkipReason)
    assert "stop changing" in result.skip_message and "shop_orders.csv" in result.skip_message


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTED])
def test_never_overlaps_a_run_in_progress(tmp_path: Path, status: dg.DagsterRunStatus) -> None:
    write(tmp_path / "shop_orders.csv")
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(job_def=DEFS.resolve_job_def("everything"),
                                          status=status)
        result = tick(tmp_path, instance=instance)
        assert isinstance(result, dg.SkipReason)
        assert "run in progress" in result.skip_message
        instance.report_run_failed(instance.get_run_by_id(run.run_id))
        assert isinstance(tick(tmp_path, instance=instance), dg.SensorResult)


@dg.asset(key=["triggers", "trigger_events"], deps=[orders_model])
def trigger_audiences() -> None: ...


@dg.asset(key=["activation", "triggers_to_webhook"], deps=[trigger_audiences])
def trigger_sync() -> None: ...


TRIGGER_DEFS = dg.Definitions(
    assets=[load_landing_files, orders_model, revenue_kpi, contacts_model, trigger_audiences,
            trigger_sync],
    jobs=[JOB], resources={"warehouse": WarehouseResource(path=":memory:")})


def trigger_tick(landing: Path) -> dg.SensorResult | dg.SkipReason:
    sensor = build_landing_sensor(JOB, landing_dir=landing, settle_seconds=0)
    return sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(),
                                          definitions=TRIGGER_DEFS))


def test_event_files_get_a_trigger_fast_path_run_first(tmp_path: Path) -> None:
    write(tmp_path / "shop_orders.csv")
    result = trigger_tick(tmp_path)
    fast, catch_up = result.run_requests
    raw = {k.to_user_string() for k in RAW_KEYS}
    assert {k.to_user_string() for k in fast.asset_selection} == (
        raw | {"triggers/trigger_events", "activation/triggers_to_webhook"})
    assert {k.to_user_string() for k in catch_up.asset_selection} == (
        raw | {"orders_model", "revenue_kpi", "triggers/trigger_events",
               "activation/triggers_to_webhook"})
    assert int(fast.tags["dagster/priority"]) > int(catch_up.tags.get("dagster/priority", 0))
    assert fast.run_key != catch_up.run_key


def test_no_fast_path_for_sources_triggers_do_not_read_or_when_turned_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "crm_contacts.csv")
    (only,) = trigger_tick(tmp_path).run_requests
    assert dg.AssetKey(["triggers", "trigger_events"]) not in only.asset_selection
    write(tmp_path / "shop_orders.csv")
    monkeypatch.setenv("CDP_TRIGGER_FAST_PATH", "off")
    (only,) = trigger_tick(tmp_path).run_requests
    assert dg.AssetKey(["orders_model"]) in only.asset_selection


def test_selection_is_valid_for_the_real_pipeline_job(tmp_path: Path) -> None:
    from orchestration.definitions import FULL_PIPELINE_JOB, TRIGGER_FAST_PATH_JOB, defs

    write(tmp_path / "segment_tracks.csv")
    sensor = build_landing_sensor(FULL_PIPELINE_JOB, landing_dir=tmp_path, settle_seconds=0,
                                  fast_path_job=TRIGGER_FAST_PATH_JOB)
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), definitions=defs)
    result = sensor(context)
    fast, request = result.run_requests
    assert set(fast.asset_selection) >= {*RAW_KEYS, dg.AssetKey(["triggers", "trigger_events"])}
    assert dg.AssetKey(["customer_events"]) not in fast.asset_selection
    selected = set(request.asset_selection)
    assert set(RAW_KEYS) <= selected
    assert dg.AssetKey(["stg_segment__tracks"]) in selected
    assert dg.AssetKey(["stg_crm__contacts"]) not in selected  # not downstream of segment_tracks
    assert (fast.job_name, request.job_name) == ("cdp_trigger_fast_path", "cdp_full_pipeline")
    job = defs.resolve_job_def("cdp_full_pipeline")
    assert job.get_subset(asset_selection=selected) is not None
    fast_job = defs.resolve_job_def("cdp_trigger_fast_path")
    assert fast_job.get_subset(asset_selection=set(fast.asset_selection)) is not None
    # One process per run: a process per step costs more than the fast path's steps.
    assert fast_job.executor_def.name == job.executor_def.name == "in_process"
