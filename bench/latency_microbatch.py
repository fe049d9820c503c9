"""Micro-batch latency: a landing file with a cart-abandon event -> the trigger row exists.

Runs what the landing sensor launches, in-process, on a warehouse the pipeline already built:
per repeat it drops `segment_tracks/microbatch-<n>.csv` (a "Product Added" event 2 hours ago for a
known user_id), evaluates the sensor, executes its run request plus `triggers/trigger_events`, and
stops the clock when `triggers.trigger_events` holds the `cart_abandoned_1h` firing for that
event. Not included: the sensor's tick interval (<= CDP_LANDING_SENSOR_INTERVAL_SECONDS), the
run launcher's process start (~10-25 s on 2 cores) and the webhook sync's delivery.

    .venv/bin/python bench/latency_microbatch.py --landing /tmp/s8/landing \
        --warehouse /tmp/s8/wh.duckdb --repeats 3

Works on copies: the landing folder and the warehouse are copied into --workdir first.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
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

    import dagster as dg
    import duckdb

    from orchestration.definitions import FULL_PIPELINE_JOB, defs
    from orchestration.sensors import build_landing_sensor
    from orchestration.triggers import TABLE, TRIGGER_ASSETS

    merged = dg.Definitions.merge(defs, dg.Definitions(assets=TRIGGER_ASSETS))
    exclude = None
    if args.exclude_daily:
        exclude = (dg.AssetSelection.key_prefixes(["predictions"], ["kpis"])
                   | dg.AssetSelection.assets("bi_publication"))
    sensor = build_landing_sensor(FULL_PIPELINE_JOB, landing_dir=landing, settle_seconds=0,
                                  exclude=exclude)
    instance = dg.DagsterInstance.ephemeral()
    con = duckdb.connect(str(warehouse), read_only=True)
    user_ids = [r[0] for r in con.execute(
        "select distinct user_id from main_staging.stg_segment__tracks "
        "where user_id is not null order by 1 limit 50").fetchall()]
    con.close()

    # The cursor starts with the files already loaded, as a sensor that has been running would.
    cursor = json.dumps({p.relative_to(landing).as_posix(): [p.stat().st_size, p.stat().st_mtime_ns]
                         for p in landing.rglob("*") if p.is_file()})
    timings, selected = [], []
    for n in range(args.repeats):
        event_id = f"microbatch-{n}-{int(time.time())}"
        occurred = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        path = landing / "segment_tracks" / f"microbatch-{n}.csv"
        path.parent.mkdir(exist_ok=True)
        started = time.perf_counter()
        path.write_text("id,anonymous_id,user_id,event,timestamp,product_id\n"
                        f"{event_id},,{user_ids[n % len(user_ids)]},Product Added,{occurred},P-1\n")
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=merged)
        result = sensor(context)
        (request,) = result.run_requests
        cursor = result.cursor
        selection = [*request.asset_selection, *[a.key for a in TRIGGER_ASSETS]]
        job = merged.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(selection))
        outcome = job.execute_in_process(instance=instance, raise_on_error=False)
        con = duckdb.connect(str(warehouse), read_only=True)
        fired = con.execute(f"select count(*) from {TABLE} where trigger_event_id like ?",
                            [f"cart_abandoned_1h:%:segment_tracks:{event_id}"]).fetchone()[0]
        con.close()
        elapsed = time.perf_counter() - started
        print(f"repeat {n}: run {'ok' if outcome.success else 'FAILED'}, "
              f"{len(selection)} assets, trigger fired={bool(fired)}, {elapsed:.1f}s", flush=True)
        if outcome.success and fired:
            timings.append(elapsed)
            selected.append(len(selection))
    if timings:
        q = sorted(timings)
        print(json.dumps({
            "repeats": len(timings), "assets_per_run": selected[0], "cores": os.cpu_count(),
            "median_s": round(statistics.median(q), 1),
            "p95_s": round(q[min(len(q) - 1, int(0.95 * len(q)))], 1),
            "min_s": round(q[0], 1), "max_s": round(q[-1], 1),
        }, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if timings else 1


if __name__ == "__main__":
    sys.exit(main())
