"""Micro-batch latency through the real Dagster daemon: landing file -> webhook receives the trigger.

Unlike bench/latency_microbatch.py (runs executed in-process), this starts `dagster-daemon run`
on the code location with the landing sensor switched on, so every second counts: the sensor's
tick interval, the settle time, the run queue, the run launcher's process start and code-location
load, the trigger fast-path run and the webhook sync's delivery to a real HTTP receiver in this
process. Per repeat it renames `segment_tracks/microbatch-<n>.csv` into the landing folder (a
"Product Added" event 2 hours ago for a known user_id with email-marketing consent), stops the
clock when the receiver holds that event's `cart_abandoned_1h` firing, then waits for the
catch-up run (everything downstream of the file) to finish before the next repeat.

    .venv/bin/python bench/latency_end_to_end.py --landing /tmp/cdp_growth/c100000/landing \\
        --warehouse /tmp/cdp_growth/c100000/warehouse.duckdb --repeats 3

Works on copies in --workdir (landing folder, warehouse, DAGSTER_HOME).
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from microbatch_support import (  # bench/ (run as scripts)
    cart_abandon_csv, consented_user_ids, loaded_cursor, percentile, received_at, start_receiver,
    warm_up_trigger_sync)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--interval", type=int, default=5, help="sensor tick interval, seconds")
    parser.add_argument("--timeout", type=float, default=1800, help="per repeat, seconds")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cdp_e2e_"))
    landing, warehouse, home = workdir / "landing", workdir / "warehouse.duckdb", workdir / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copy(ROOT / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    shutil.copytree(args.landing, landing, dirs_exist_ok=True)
    for old in (landing / "segment_tracks").glob("microbatch-*.csv"):
        old.unlink()
    shutil.copy(args.warehouse, warehouse)

    server = start_receiver()
    os.environ.update({
        "DAGSTER_HOME": str(home),
        "CDP_LANDING_DIR": str(landing), "CDP_WAREHOUSE": str(warehouse),
        "CDP_PUBLICATION": str(workdir / "pub.duckdb"),
        "CDP_SERVING_SNAPSHOT": str(workdir / "serving.duckdb"),
        "CDP_ACTIVATION_DIR": str(workdir / "activation"),
        "CDP_LANDING_SENSOR": "running",
        "CDP_LANDING_SENSOR_INTERVAL_SECONDS": str(args.interval),
        "CDP_LANDING_SETTLE_SECONDS": "1",
        "CDP_TRIGGER_WEBHOOK_URL": f"http://127.0.0.1:{server.server_port}/triggers",
        "CDP_TRIGGER_WEBHOOK_SECRET": "bench-secret",
    })
    os.environ.pop("CDP_AS_OF", None)
    subprocess.run([str(BIN / "dbt"), "parse", "--profiles-dir", "profiles", "--quiet"],
                   cwd=ROOT, check=True)

    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.sensors import SENSOR_NAME

    user_ids = consented_user_ids(warehouse)
    warm_up_trigger_sync(defs, dg.DagsterInstance.ephemeral())
    # The sensor has been running: its cursor holds the files already loaded.
    cursor = loaded_cursor(landing)
    subprocess.run([str(BIN / "dagster"), "sensor", "cursor", SENSOR_NAME, "--set", cursor,
                    "-m", "orchestration.definitions"], cwd=ROOT, check=True,
                   capture_output=True)
    # Setting a cursor stores the sensor's state as stopped: start it explicitly.
    subprocess.run([str(BIN / "dagster"), "sensor", "start", SENSOR_NAME,
                    "-m", "orchestration.definitions"], cwd=ROOT, check=True,
                   capture_output=True)

    log = (workdir / "daemon.log").open("w")
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m",
                               "orchestration.definitions"], cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    instance = dg.DagsterInstance.get()
    latencies, starts, fast_runs, catch_ups = [], [], [], []
    try:
        time.sleep(10)  # the daemon's first sensor tick
        for n in range(args.repeats):
            event_id = f"e2e-{n}-{int(time.time())}"
            folder = landing / "segment_tracks"
            folder.mkdir(exist_ok=True)
            staging = folder / f".microbatch-{n}.csv"   # hidden while written
            staging.write_text(cart_abandon_csv(event_id, user_ids[n % len(user_ids)]))
            dropped = time.time()
            staging.rename(folder / f"microbatch-{n}.csv")
            arrived = None
            while arrived is None and time.time() - dropped < args.timeout:
                time.sleep(0.2)
                arrived = received_at(f"segment_tracks:{event_id}")
                if daemon.poll() is not None:
                    raise RuntimeError(f"dagster-daemon exited; see {workdir / 'daemon.log'}")
            if arrived is None:
                print(f"repeat {n}: webhook NOT received in {args.timeout:.0f}s", flush=True)
                continue
            # Then the catch-up run: wait for every run of this micro-batch to finish.
            while True:
                records = instance.get_run_records(
                    filters=dg.RunsFilter(tags={"cdp/trigger": "landing_sensor"}), limit=4)
                mine = [r for r in records
                        if r.create_timestamp.timestamp() >= dropped - 1]
                if len(mine) >= 2 and all(r.dagster_run.is_finished for r in mine):
                    break
                time.sleep(1)
            by_kind = {r.dagster_run.tags.get("cdp/micro_batch"): r for r in mine}
            fast, catch_up = by_kind["trigger_fast_path"], by_kind["catch_up"]
            latency = arrived - dropped
            latencies.append(latency)
            starts.append(fast.start_time - dropped)
            fast_runs.append(fast.end_time - fast.start_time)
            catch_ups.append(catch_up.end_time - catch_up.start_time)
            print(f"repeat {n}: webhook after {latency:.1f}s (fast run started "
                  f"{starts[-1]:.1f}s after the file, ran {fast_runs[-1]:.1f}s, "
                  f"{fast.dagster_run.status.value}); catch-up run "
                  f"{catch_ups[-1]:.1f}s, {catch_up.dagster_run.status.value}", flush=True)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        server.shutdown()
    if latencies:
        print(json.dumps({
            "repeats": len(latencies), "cores": os.cpu_count(),
            "sensor_interval_s": args.interval,
            "file_to_webhook_median_s": round(statistics.median(latencies), 1),
            "file_to_webhook_p95_s": round(percentile(latencies, 0.95), 1),
            "file_to_webhook_max_s": round(max(latencies), 1),
            "file_to_fast_run_start_median_s": round(statistics.median(starts), 1),
            "fast_run_median_s": round(statistics.median(fast_runs), 1),
            "catch_up_run_median_s": round(statistics.median(catch_ups), 1),
        }, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if len(latencies) == args.repeats else 1


if __name__ == "__main__":
    sys.exit(main())
