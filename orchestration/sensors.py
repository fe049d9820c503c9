"""Sensor: when files arrive in the landing folder, run the assets they affect (micro-batches).

Every tick compares the landing files (path, size, modification time) with the cursor, which
holds the files already handed to a run. New or changed files launch one run of the pipeline job
restricted to the loader and everything downstream of the sources that changed. The sensor waits:

* until a new file has not been modified for CDP_LANDING_SETTLE_SECONDS (default 3), so a file
  still being copied in is not loaded half-written;
* while any run is queued or in progress, so runs never overlap on the DuckDB file (the instance,
  orchestration/dagster.yaml, also allows one run at a time); files that arrive meanwhile are
  collected into the next micro-batch.

Hidden files and names starting with `_` are ignored, as the loader ignores them.

Trigger fast path (CDP_TRIGGER_FAST_PATH, on by default): when the new files feed an event source
the trigger audiences read (segment_tracks, shop_orders), the tick first requests a small run,
the loader plus `triggers/trigger_events` and the syncs fed by it, with a higher queue priority,
then the catch-up run of everything affected. Trigger audiences resolve new events through the
identity map of the last full run (orchestration/triggers/), so an abandoned cart reaches the
webhook without waiting for identity, profiles and features to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from orchestration.ingestion import LandingError, discover_landing
from orchestration.ingestion.assets import RAW_SPECS
from orchestration.recovery import recover_abandoned_runs
from orchestration.settings import load_settings
from orchestration.triggers import PENDING_EVENT_SQL

SENSOR_NAME = "landing_files_arrived_run_affected_assets"
SETTLE_ENV = "CDP_LANDING_SETTLE_SECONDS"
INTERVAL_ENV = "CDP_LANDING_SENSOR_INTERVAL_SECONDS"
DEFAULT_STATUS_ENV = "CDP_LANDING_SENSOR"  # "running" to start it with the code location
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# The loader's assets (built-in and declared sources), as the definitions load them.
# Every key of the loader's multi-asset (landing sources and the phone lookup): it cannot be
# subset, so a selection takes all of them.
RAW_KEYS = [spec.key for spec in RAW_SPECS]
FAST_PATH_ENV = "CDP_TRIGGER_FAST_PATH"  # "0"/"off" runs only the catch-up run
# The sources the trigger fast path reads (orchestration/triggers/): one list, there.
FAST_PATH_SOURCES = tuple(PENDING_EVENT_SQL)
TRIGGER_KEY = dg.AssetKey(["triggers", "trigger_events"])
FAST_PATH_PRIORITY = "10"  # dagster/priority: queued fast runs start before queued catch-ups

# {relative path: [size, mtime_ns]}
Fingerprint = dict[str, list[int]]


@dataclass(frozen=True)
class LandingChanges:
    sources: list[str]            # sources with a new or changed file
    files: list[str]              # those files, relative to the landing folder
    unsettled: list[str]          # files modified too recently to be loaded yet
    fingerprint: Fingerprint      # every landing file now


def landing_fingerprint(landing_dir: Path) -> tuple[Fingerprint, dict[str, str]]:
    """Every landing file of the contract with its size and mtime, and the source it feeds."""
    inventory = discover_landing(landing_dir)
    fingerprint: Fingerprint = {}
    source_of: dict[str, str] = {}
    for source, paths in inventory.files.items():
        for path in paths:
            try:
                stat = path.stat()
            except FileNotFoundError:  # gone since discovery; the next tick sees it as it is
                continue
            relative = path.relative_to(landing_dir).as_posix()
            fingerprint[relative] = [stat.st_size, stat.st_mtime_ns]
            source_of[relative] = source
    return fingerprint, source_of


def detect_changes(landing_dir: Path, cursor: str | None, settle_seconds: float,
                   now: float | None = None) -> LandingChanges:
    previous: Fingerprint = json.loads(cursor) if cursor else {}
    fingerprint, source_of = landing_fingerprint(landing_dir)
    now = time.time() if now is None else now
    changed = sorted(f for f, stamp in fingerprint.items() if previous.get(f) != stamp)
    unsettled = [f for f in changed if now - fingerprint[f][1] / 1e9 < settle_seconds]
    return LandingChanges(
        sources=sorted({source_of[f] for f in changed}),
        files=changed,
        unsettled=unsettled,
        fingerprint=fingerprint,
    )


def affected_assets(asset_graph, changed_sources: list[str],
                    exclude: dg.AssetSelection | None = None) -> list[dg.AssetKey]:
    """The loader's assets (it loads all sources at once) and everything downstream of the
    changed ones, less `exclude` (e.g. daily model fits that micro-batches need not wait for)."""
    # a source declared since the definitions loaded has no asset until they reload
    changed = [dg.AssetKey(["raw", s]) for s in changed_sources
               if asset_graph.has(dg.AssetKey(["raw", s]))]
    selection = (dg.AssetSelection.assets(*RAW_KEYS)
                 | dg.AssetSelection.assets(*changed).downstream())
    if exclude is not None:
        selection = selection - exclude
    return sorted(selection.resolve(asset_graph), key=lambda k: k.to_user_string())


def trigger_fast_path_selection() -> dg.AssetSelection:
    """The loader, the trigger audiences and everything they feed (their syncs)."""
    return (dg.AssetSelection.assets(*RAW_KEYS)
            | dg.AssetSelection.assets(TRIGGER_KEY).downstream())


def fast_path_assets(asset_graph, changed_sources: list[str]) -> list[dg.AssetKey]:
    """The fast-path selection when the changed sources carry events the triggers read and the
    definitions have trigger audiences; else []."""
    if not set(changed_sources) & set(FAST_PATH_SOURCES) or not asset_graph.has(TRIGGER_KEY):
        return []
    return sorted(trigger_fast_path_selection().resolve(asset_graph),
                  key=lambda k: k.to_user_string())


def fast_path_enabled() -> bool:
    return os.environ.get(FAST_PATH_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def active_runs(instance: dg.DagsterInstance) -> int:
    return len(instance.get_run_ids(filters=dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES), limit=5))


def _run_key(fingerprint: Fingerprint, files: list[str]) -> str:
    digest = hashlib.sha256(json.dumps({f: fingerprint[f] for f in files}, sort_keys=True).encode())
    return "landing-" + digest.hexdigest()[:16]


def evaluate(context: dg.SensorEvaluationContext, landing_dir: Path, settle_seconds: float,
             exclude: dg.AssetSelection | None = None,
             fast_path_job: str | None = None,
             job_name: str | None = None) -> dg.SensorResult | dg.SkipReason:
    try:
        changes = detect_changes(landing_dir, context.cursor, settle_seconds)
    except LandingError as exc:
        return dg.SkipReason(str(exc))
    if not changes.files:
        return dg.SkipReason(f"no new landing files in {landing_dir}")
    if changes.unsettled:
        return dg.SkipReason(
            f"waiting for {len(changes.unsettled)} file(s) to stop changing "
            f"for {settle_seconds:g}s: "
            + ", ".join(changes.unsettled[:5]))
    recover_abandoned_runs(context.instance)  # a killed run must not block the sensor forever
    running = active_runs(context.instance)
    if running:
        return dg.SkipReason(
            f"{len(changes.files)} new landing file(s) wait for the run in progress to finish "
            "(runs never overlap on the DuckDB file)")
    graph = context.repository_def.asset_graph
    selection = affected_assets(graph, changes.sources, exclude)
    fast = fast_path_assets(graph, changes.sources) if fast_path_enabled() else []
    context.log.info(f"{len(changes.files)} new landing file(s) for {', '.join(changes.sources)}: "
                     f"launching {len(selection)} assets"
                     + (f", after a trigger fast path of {len(fast)}" if fast else ""))
    run_key = _run_key(changes.fingerprint, changes.files)
    tags = {
        "cdp/trigger": "landing_sensor",
        "cdp/landing_sources": ",".join(changes.sources)[:200],
        "cdp/landing_files": str(len(changes.files)),
    }
    requests = []
    if fast:
        requests.append(dg.RunRequest(
            run_key=run_key + "-triggers", asset_selection=fast, job_name=fast_path_job,
            tags={**tags, "cdp/micro_batch": "trigger_fast_path",
                  "dagster/priority": FAST_PATH_PRIORITY}))
    requests.append(dg.RunRequest(run_key=run_key, asset_selection=selection, job_name=job_name,
                                  tags={**tags, "cdp/micro_batch": "catch_up"}))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(changes.fingerprint))


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError as exc:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from exc


def build_landing_sensor(job: dg.UnresolvedAssetJobDefinition | dg.JobDefinition,
                         landing_dir: Path | None = None,
                         settle_seconds: float | None = None,
                         minimum_interval_seconds: int | None = None,
                         default_status: dg.DefaultSensorStatus | None = None,
                         exclude: dg.AssetSelection | None = None,
                         fast_path_job: dg.UnresolvedAssetJobDefinition | None = None,
                         ) -> dg.SensorDefinition:
    """A sensor launching `job` (which must cover every asset) on the assets new files affect.

    `exclude`: assets left to the daily schedule (e.g. model fits, publications), so a
    micro-batch finishes sooner. `fast_path_job`: the job of trigger fast-path runs (its
    selection must cover trigger_fast_path_selection()); by default `job`."""
    if default_status is None:
        running = os.environ.get(DEFAULT_STATUS_ENV, "").lower() in ("running", "on", "1", "true")
        default_status = (dg.DefaultSensorStatus.RUNNING if running
                          else dg.DefaultSensorStatus.STOPPED)
    interval = minimum_interval_seconds or int(_env_float(INTERVAL_ENV, 15))

    targets = {"jobs": [job, fast_path_job]} if fast_path_job is not None else {"job": job}

    @dg.sensor(
        name=SENSOR_NAME,
        **targets,
        minimum_interval_seconds=interval,
        default_status=default_status,
        description=(
            "Watches the landing folder (CDP_LANDING_DIR); when files arrive and have settled, "
            "runs the loader and every asset downstream of the sources they feed. Waits while "
            "another run is in progress, so runs never overlap on the DuckDB file. New events "
            "first get a small trigger fast-path run (CDP_TRIGGER_FAST_PATH)."
        ),
        tags={"trigger": "landing_files", "owner": "team:data-engineering"},
    )
    def landing_sensor(context: dg.SensorEvaluationContext):
        folder = landing_dir or load_settings().landing_dir
        settle = settle_seconds if settle_seconds is not None else _env_float(SETTLE_ENV, 3.0)
        if fast_path_job is None:
            return evaluate(context, folder, settle, exclude)
        return evaluate(context, folder, settle, exclude, fast_path_job.name, job.name)

    return landing_sensor

