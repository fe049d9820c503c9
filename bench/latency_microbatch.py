"""Micro-batch latency: a landing file with a cart-abandon event -> the webhook receives the trigger.

Runs what the landing sensor launches, in-process, on a warehouse the pipeline already built,
with the `triggers_to_webhook` sync pointed at a real local HTTP receiver. Per repeat it drops
`segment_tracks/microbatch-<n>.csv` (a "Product Added" event 2 hours ago for a known user_id
with email-marketing consent), evaluates the sensor, executes its trigger fast-path run (loader,
`triggers/trigger_events`, the webhook sync) and stops the clock when the receiver holds that
event's `cart_abandoned_1h` firing. The catch-up run the sensor requests next (everything
downstream of the new file) is then executed and timed separately, so each repeat starts from a
fully caught-up warehouse, as in production where the queue runs them in order. Not included:
the sensor's tick interval (<= CDP_LANDING_SENSOR_INTERVAL_SECONDS) and the run launcher's
process start (~10-25 s on 2 cores).

    .venv/bin/python bench/latency_microbatch.py --landing /tmp/s8/landing \
        --warehouse /tmp/s8/wh.duckdb --repeats 5

Works on copies: the landing folder and the warehouse are copied into --workdir first.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from microbatch_support import (  # bench/ (run as scripts)
    cart_abandon_csv, consented_user_ids, loaded_cursor, percentile, received_at, start_receiver,
    warm_up_trigger_sync)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--catch-up-runs", type=int, default=None,
                        help="execute the catch-up run after the first K repeats only "
                             "(default: after every repeat)")
    parser.add_argument("--exclude-daily", action="store_true",
                        help="leave predictions, KPI report and BI publication to the daily run")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cdp_microbatch_"))
    landing, warehouse = workdir / "landing", workdir / "warehouse.duckdb"
    shutil.copytree(args.landing, landing, dirs_exist_ok=True)
    shutil.copy(args.warehouse, warehouse)
    os.environ.update({
        "CDP_LANDING_DIR": str(landing), "CDP_WAREHOUSE": str(warehouse),
        "CDP_PUBLICATION": str(workdir / "pub.duckdb"),
        "CDP_SERVING_SNAPSHOT": str(workdir / "serving.duckdb"),
        "CDP_ACTIVATION_DIR": str(workdir / "activation"),
    })
    os.environ.pop("CDP_AS_OF", None)
    # As `make run` does: dagster-dbt's manifest must match the project dbt will build.
    root = Path(__file__).resolve().parent.parent
    subprocess.run([str(Path(sys.executable).with_name("dbt")), "parse", "--profiles-dir",
                    "profiles", "--quiet"], cwd=root, check=True)

    server = start_receiver()
    os.environ["CDP_TRIGGER_WEBHOOK_URL"] = f"http://127.0.0.1:{server.server_port}/triggers"
    os.environ.setdefault("CDP_TRIGGER_WEBHOOK_SECRET", "bench-secret")

    import dagster as dg

    from orchestration.definitions import FULL_PIPELINE_JOB, defs
    from orchestration.sensors import build_landing_sensor

    exclude = None
    if args.exclude_daily:
        exclude = (dg.AssetSelection.key_prefixes(["predictions"], ["kpis"])
                   | dg.AssetSelection.assets("bi_publication"))
    sensor = build_landing_sensor(FULL_PIPELINE_JOB, landing_dir=landing, settle_seconds=0,
                                  exclude=exclude)
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    user_ids = consented_user_ids(warehouse)
    warm_up_trigger_sync(defs, instance)
    # The cursor starts with the files already loaded, as a sensor that has been running would.
    cursor = loaded_cursor(landing)
    latencies, fast_runs, catch_ups, sizes = [], [], [], []
    for n in range(args.repeats):
        event_id = f"microbatch-{n}-{int(time.time())}"
        path = landing / "segment_tracks" / f"microbatch-{n}.csv"
        path.parent.mkdir(exist_ok=True)
        started = time.time()
        path.write_text(cart_abandon_csv(event_id, user_ids[n % len(user_ids)]))
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        result = sensor(context)
        fast, catch_up = result.run_requests
        cursor = result.cursor
        ok = job.get_subset(asset_selection=set(fast.asset_selection)).execute_in_process(
            instance=instance, raise_on_error=False).success
        arrived = received_at(f"segment_tracks:{event_id}")
        fast_s = time.time() - started
        latency = arrived - started if arrived else None
        ok_catch_up, catch_up_s = None, 0.0
        if args.catch_up_runs is None or n < args.catch_up_runs:
            caught = time.time()
            ok_catch_up = job.get_subset(
                asset_selection=set(catch_up.asset_selection)).execute_in_process(
                instance=instance, raise_on_error=False).success
            catch_up_s = time.time() - caught
        print(f"repeat {n}: fast run {'ok' if ok else 'FAILED'} ({len(fast.asset_selection)} "
              f"assets, {fast_s:.1f}s), webhook "
              + (f"received after {latency:.1f}s" if latency else "NOT received")
              + ("; catch-up skipped" if ok_catch_up is None else
                 f"; catch-up {'ok' if ok_catch_up else 'FAILED'} "
                 f"({len(catch_up.asset_selection)} assets, {catch_up_s:.1f}s)"), flush=True)
        if ok and latency is not None:
            latencies.append(latency)
            fast_runs.append(fast_s)
            sizes.append(len(fast.asset_selection))
        if ok_catch_up:
            catch_ups.append(catch_up_s)
    server.shutdown()
    if latencies:
        print(json.dumps({
            "repeats": len(latencies), "fast_path_assets": sizes[0], "cores": os.cpu_count(),
            "file_to_webhook_median_s": round(statistics.median(latencies), 1),
            "file_to_webhook_p95_s": round(percentile(latencies, 0.95), 1),
            "file_to_webhook_max_s": round(max(latencies), 1),
            "catch_up_run_median_s": round(statistics.median(catch_ups), 1) if catch_ups else None,
            "catch_up_run_max_s": round(max(catch_ups), 1) if catch_ups else None,
        }, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if latencies else 1


if __name__ == "__main__":
    sys.exit(main())
