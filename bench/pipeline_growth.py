"""Benchmark the whole pipeline on DuckDB at several sizes: wall time and peak memory per stage.

For each size it generates landing data (not timed as pipeline), measures the I/O floor (one
DuckDB pass that reads every landing file once, in a fresh process), then runs `cdp run` (the
real Dagster job, as `make run` does) while a sampler records the resident memory of the whole
process tree every 0.2 s. Stages are attributed afterwards from the run's own records:

* Python steps (load, privacy, predictions, publication, serving, triggers, activation) from the
  Dagster event log (step start/end);
* dbt stages (staging, identity + profiles, privacy, features, segments, KPIs) from dbt's
  run_results.json: per node start/end, grouped by the model's folder (tests with their models).

Peak memory of a stage is the highest sampled tree RSS within its time window (dbt runs two
threads, so neighbouring dbt stages can overlap by a few seconds).

    .venv/bin/python -m bench.pipeline_growth --sizes 50000 200000 800000 --workdir /tmp/growth

Prints a Markdown table and writes JSON next to it; record figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
PAGE = os.sysconf("SC_PAGE_SIZE")

DBT_STAGES = {
    "staging": "staging",
    "identity": "identity and profiles",
    "profiles": "identity and profiles",
    "privacy": "privacy (dbt)",
    "features": "features",
    "segments": "segments and journeys",
    "kpis": "KPIs",
}


def step_stage(step_key: str) -> str:
    """Stage of a Dagster step (Python assets; the dbt step is split by run_results)."""
    if step_key.startswith("load_landing"):
        return "load"
    if step_key.startswith("activation"):
        return "activation"
    if "prediction" in step_key:
        return "predictions"
    if step_key.startswith("privacy"):
        return "privacy (requests)"
    if "publication" in step_key or "serving" in step_key:
        return "BI publication and serving snapshot"
    if step_key.startswith("kpi"):
        return "KPIs"
    if "trigger" in step_key:
        return "triggers"
    if "_gx_" in step_key:
        return "quality checks (Great Expectations)"
    return step_key


def process_rss(root_pid: int) -> tuple[int, int]:
    """(tree total, largest single process) resident bytes of `root_pid` and its descendants."""
    children: dict[int, list[int]] = defaultdict(list)
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children[int(fields[1])].append(pid)
        rss[pid] = int(fields[21]) * PAGE
    total, largest, stack = 0, 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        largest = max(largest, rss.get(pid, 0))
        stack.extend(children.get(pid, []))
    return total, largest


def tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of `root_pid` and all its descendants, from /proc."""
    return process_rss(root_pid)[0]


class Sampler(threading.Thread):
    """Samples the process tree's RSS until stopped; samples are (epoch seconds, bytes)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.time(), tree_rss_bytes(self.pid)))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def peak(self, start: float, end: float) -> int:
        inside = [b for t, b in self.samples if start - 0.2 <= t <= end + 0.2]
        return max(inside, default=0)


def io_floor(landing: Path) -> float:
    """Seconds for one fresh DuckDB process to read every landing file once."""
    script = (
        "import duckdb, sys, pathlib\n"
        "con = duckdb.connect()\n"
        "for p in sorted(pathlib.Path(sys.argv[1]).rglob('*')):\n"
        "    if p.name.startswith(('.', '_')) or not p.is_file(): continue\n"
        "    if any(part.startswith('_') for part in p.relative_to(sys.argv[1]).parts): continue\n"
        "    if p.suffix == '.parquet':\n"
        "        con.execute('select count(*) from read_parquet(?)', [str(p)]).fetchone()\n"
        "    elif p.suffix in ('.csv', '.gz'):\n"
        "        con.execute('select count(*) from read_csv(?, all_varchar=true)', [str(p)])"
        ".fetchone()\n"
    )
    started = time.perf_counter()
    subprocess.run([str(BIN / "python"), "-c", script, str(landing)], check=True)
    return time.perf_counter() - started


def landing_rows(landing: Path) -> int:
    import duckdb

    con = duckdb.connect()
    total = 0
    for path in landing.rglob("*.csv"):
        if any(part.startswith("_") for part in path.relative_to(landing).parts):
            continue
        total += con.execute("select count(*) from read_csv(?, all_varchar=true)",
                             [str(path)]).fetchone()[0]
    return total


def step_windows(dagster_home: Path) -> tuple[str, dict[str, tuple[float, float]]]:
    """Start and end (epoch seconds) of every step of the latest run in this Dagster home."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_records(limit=1)[0].dagster_run
        starts: dict[str, float] = {}
        windows: dict[str, tuple[float, float]] = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or record.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                starts[record.step_key] = record.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                windows[record.step_key] = (starts.get(record.step_key, record.timestamp),
                                            record.timestamp)
    return run.run_id, windows


def dbt_node_windows(run_id: str) -> list[tuple[str, float, float, float]]:
    """(stage, start, end, execution seconds) of every dbt node of the Dagster run `run_id`."""
    from datetime import datetime

    # dagster-dbt runs dbt once per step of the job (the job interleaves Python assets), each
    # invocation in its own target folder, named <step>-<run id prefix>-<invocation>
    candidates = list((ROOT / "target").glob(f"*-{run_id[:7]}-*/run_results.json"))
    manifest = json.loads((ROOT / "target" / "manifest.json").read_text())
    nodes = {**manifest["nodes"], **manifest.get("unit_tests", {})}
    out = []
    results = [r for path in candidates for r in json.loads(path.read_text())["results"]]
    for result in results:
        node = nodes.get(result["unique_id"], {})
        fqn = node.get("fqn", ["", "other"])
        folder = fqn[2] if len(fqn) > 3 and fqn[1] in ("intermediate", "marts") else fqn[1]
        stage = DBT_STAGES.get(folder, "seeds and other dbt")
        timing = [t for t in result.get("timing", []) if t.get("started_at")]
        if not timing:
            continue
        start = datetime.fromisoformat(timing[0]["started_at"].replace("Z", "+00:00")).timestamp()
        end = datetime.fromisoformat(timing[-1]["completed_at"].replace("Z", "+00:00")).timestamp()
        out.append((stage, start, end, float(result.get("execution_time") or 0)))
    return out


def run_size(customers: int, workdir: Path, seed: int) -> dict[str, Any]:
    base = workdir / f"c{customers}"
    landing = base / "landing"
    if not landing.is_dir():
        started = time.perf_counter()
        subprocess.run([str(BIN / "cdp"), "generate", "--customers", str(customers), "--seed",
                        str(seed), "--out", str(landing)], check=True)
        print(f"generated {customers} customers in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
    rows = landing_rows(landing)
    floor = io_floor(landing)

    for name in ("warehouse.duckdb", "warehouse.duckdb.wal", "dagster_home", "publication",
                 "activation", "serving"):
        path = base / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    home = base / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ,
           "DAGSTER_HOME": str(home),
           "CDP_LANDING_DIR": str(landing),
           "CDP_WAREHOUSE": str(base / "warehouse.duckdb"),
           "CDP_PUBLICATION": str(base / "publication" / "cdp_bi.duckdb"),
           "CDP_ACTIVATION_DIR": str(base / "activation"),
           "CDP_SERVING_SNAPSHOT": str(base / "serving" / "profiles.duckdb"),
           "CDP_DBT_TARGET": "duckdb"}
    started = time.perf_counter()
    process = subprocess.Popen([str(BIN / "cdp"), "run"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(process.pid)
    sampler.start()
    output, _ = process.communicate()
    sampler.stop()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"cdp run failed at {customers} customers:\n{output[-4000:]}")

    stages: dict[str, dict[str, float]] = {}

    def add(stage: str, start: float, end: float, seconds: float) -> None:
        entry = stages.setdefault(stage, {"start": start, "end": end, "seconds": 0.0})
        entry["start"], entry["end"] = min(entry["start"], start), max(entry["end"], end)
        entry["seconds"] += seconds

    run_id, windows = step_windows(home)
    for step, (start, end) in windows.items():
        if "dbt" in step:
            continue
        add(step_stage(step), start, end, end - start)
    for stage, start, end, seconds in dbt_node_windows(run_id):
        add(stage, start, end, seconds)
    table = {
        stage: {"seconds": round(v["seconds"], 1), "span_seconds": round(v["end"] - v["start"], 1),
                "peak_mib": round(sampler.peak(v["start"], v["end"]) / 2**20)}
        for stage, v in sorted(stages.items(), key=lambda item: item[1]["start"])
    }
    return {
        "customers": customers,
        "landing_rows": rows,
        "io_floor_seconds": round(floor, 1),
        "pipeline_wall_seconds": round(wall, 1),
        "floor_multiple": round(wall / floor, 1),
        "peak_mib": round(max((b for _, b in sampler.samples), default=0) / 2**20),
        "stages": table,
    }


def markdown(results: list[dict[str, Any]]) -> str:
    stages: list[str] = []
    for result in results:
        stages += [s for s in result["stages"] if s not in stages]
    head = "| stage | " + " | ".join(f"{r['customers']:,} customers" for r in results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]
    for stage in stages:
        cells = []
        for result in results:
            value = result["stages"].get(stage)
            cells.append(f"{value['seconds']} s, {value['peak_mib']:,} MiB" if value else "-")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    for label, key, fmt in (("landing rows", "landing_rows", "{:,}"),
                            ("whole pipeline (wall)", "pipeline_wall_seconds", "{} s"),
                            ("peak memory (process tree)", "peak_mib", "{:,} MiB"),
                            ("I/O floor (read every file once)", "io_floor_seconds", "{} s"),
                            ("pipeline / floor", "floor_multiple", "{}x")):
        lines.append(f"| {label} | " + " | ".join(fmt.format(r[key]) for r in results) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 800_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cdp_growth"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes:
        results.append(run_size(size, args.workdir, args.seed))
        print(json.dumps(results[-1]), file=sys.stderr)
    (args.workdir / "growth.json").write_text(json.dumps(results, indent=2))
    print(markdown(results))


if __name__ == "__main__":
    main()
