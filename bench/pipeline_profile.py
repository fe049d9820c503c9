"""Profile one whole pipeline run: time, rows, memory and spill per Dagster step and per dbt model.

Runs `cdp run` (the real Dagster job) on generated data of one size, from an empty warehouse, as
bench/pipeline_growth.py does, while a sampler records every 0.2 s:

* the resident memory of the whole process tree, and of its largest single process (a Dagster
  step runs in its own process, dbt in a child of it);
* the bytes in DuckDB's spill folder (CDP_DUCKDB_TEMP_DIRECTORY, set to a folder of the run, so
  every DuckDB connection of the run, dbt's and the Python assets', spills there);
* the bytes of the warehouse file and its WAL.

Afterwards it reads the run's own records: Dagster step start/end from the event log, and per dbt
node its timing and adapter response from each invocation's run_results.json, plus the row count
of every table a model built (read from the finished warehouse; a view has no rows of its own).

    .venv/bin/python -m bench.pipeline_profile --customers 400000 --workdir /tmp/cdp_profile \
        [--memory-limit 4GiB] [--threads 2]

`--reuse` analyses the run recorded in the workdir again (samples.json); for a run still going it
reads samples.external.json instead, the samples of a `Sampler` of this module attached to the
`cdp run` pid from another process, and reports the steps and dbt invocations finished so far.

Prints Markdown tables (stages, top models by time, top models by peak memory) and writes JSON
(profile.json) beside the data; record figures in docs/benchmarks.md.
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
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.pipeline_growth import (BIN, DBT_STAGES, ROOT, landing_rows, process_rss,
                                   step_stage, step_windows)


def folder_bytes(path: Path) -> int:
    """Bytes of the files under `path` (0 when it does not exist); files vanish while we walk."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def file_bytes(*paths: Path) -> int:
    return sum(p.stat().st_size for p in paths if p.exists())


class Sampler(threading.Thread):
    """Samples (time, tree RSS, largest process RSS, spill bytes, warehouse bytes) until stopped."""

    def __init__(self, pid: int, spill: Path, warehouse: Path, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.spill, self.warehouse, self.interval = pid, spill, warehouse, interval
        self.samples: list[tuple[float, int, int, int, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        wal = self.warehouse.with_name(self.warehouse.name + ".wal")
        while not self._stop_event.is_set():
            tree, largest = process_rss(self.pid)
            self.samples.append((time.time(), tree, largest, folder_bytes(self.spill),
                                 file_bytes(self.warehouse, wal)))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def peaks(self, start: float, end: float) -> dict[str, int]:
        """Highest tree RSS, process RSS, spill and warehouse bytes sampled in [start, end]."""
        inside = [s for s in self.samples if start - 0.2 <= s[0] <= end + 0.2]
        names = ("tree_rss", "process_rss", "spill", "warehouse")
        return {name: max((s[i + 1] for s in inside), default=0) for i, name in enumerate(names)}


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def dbt_nodes(run_id: str) -> list[dict[str, Any]]:
    """Every dbt node the Dagster run `run_id` executed: name, stage, kind, start, end, seconds,
    relation and the adapter's rows_affected (dagster-dbt writes one target folder per
    invocation, <step>-<run id prefix>-<invocation>, as bench/pipeline_growth.py reads)."""
    manifest = json.loads((ROOT / "target" / "manifest.json").read_text())
    nodes = {**manifest["nodes"], **manifest.get("unit_tests", {})}
    out = []
    for path in (ROOT / "target").glob(f"*-{run_id[:7]}-*/run_results.json"):
        for result in json.loads(path.read_text())["results"]:
            node = nodes.get(result["unique_id"], {})
            fqn = node.get("fqn", ["", "other"])
            folder = fqn[2] if len(fqn) > 3 and fqn[1] in ("intermediate", "marts") else fqn[1]
            timing = [t for t in result.get("timing", []) if t.get("started_at")]
            if not timing:
                continue
            out.append({
                "name": node.get("name", result["unique_id"]),
                "kind": node.get("resource_type", "?"),
                "materialized": node.get("config", {}).get("materialized"),
                "relation": node.get("relation_name"),
                "folder": "/".join(fqn[1:-1]) or node.get("resource_type", "?"),
                "stage": DBT_STAGES.get(folder, f"dbt {'/'.join(fqn[1:3])}" if len(fqn) > 2
                                        else "seeds and other dbt"),
                "start": parse_time(timing[0]["started_at"]),
                "end": parse_time(timing[-1]["completed_at"]),
                "seconds": float(result.get("execution_time") or 0),
                "rows_affected": (result.get("adapter_response") or {}).get("rows_affected"),
            })
    return out


def table_rows(warehouse: Path, relations: list[str]) -> dict[str, int]:
    """Row count of every relation that is a table in the finished warehouse."""
    import duckdb

    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.IOException:  # the run still holds the file (a --reuse of a run in progress)
        return {}
    try:
        tables = {f'"{db}"."{schema}"."{name}"'.lower() for db, schema, name in con.execute(
            "select database_name, schema_name, table_name from duckdb_tables()").fetchall()}
        return {r: con.execute(f"select count(*) from {r}").fetchone()[0]
                for r in relations if r and r.lower() in tables}
    finally:
        con.close()


def fresh_outputs(base: Path) -> None:
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal", "dagster_home", "publication",
                 "activation", "serving", "spill"):
        path = base / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_pipeline(env: dict[str, str], spill: Path, warehouse: Path,
                 customers: int) -> dict[str, Any]:
    """`cdp run` under the sampler: the samples, the wall time and the load around it."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    process = subprocess.Popen([str(BIN / "cdp"), "run"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(process.pid, spill, warehouse)
    sampler.start()
    output, _ = process.communicate()
    sampler.stop()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"cdp run failed at {customers} customers:\n{output[-4000:]}")
    return {"samples": sampler.samples, "wall": wall, "load_before": list(load_before),
            "load_after": list(os.getloadavg())}


def profile(customers: int, workdir: Path, seed: int, memory_limit: str | None,
            threads: int | None, reuse: bool = False) -> dict[str, Any]:
    base = workdir / f"c{customers}"
    landing = base / "landing"
    if not landing.is_dir():
        subprocess.run([str(BIN / "cdp"), "generate", "--customers", str(customers), "--seed",
                        str(seed), "--out", str(landing)], check=True)
    rows = landing_rows(landing)
    home, spill, warehouse = base / "dagster_home", base / "spill", base / "warehouse.duckdb"
    if not reuse:
        fresh_outputs(base)
        (base / "samples.json").unlink(missing_ok=True)
        home.mkdir()
        shutil.copy(ROOT / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ,
           "DAGSTER_HOME": str(home),
           "CDP_LANDING_DIR": str(landing),
           "CDP_WAREHOUSE": str(warehouse),
           "CDP_PUBLICATION": str(base / "publication" / "cdp_bi.duckdb"),
           "CDP_ACTIVATION_DIR": str(base / "activation"),
           "CDP_SERVING_SNAPSHOT": str(base / "serving" / "profiles.duckdb"),
           "CDP_DUCKDB_TEMP_DIRECTORY": str(spill),
           "CDP_DBT_TARGET": "duckdb"}
    if memory_limit:
        env["CDP_DUCKDB_MEMORY_LIMIT"] = memory_limit
    if threads:
        env["CDP_DUCKDB_THREADS"] = str(threads)
    recorded = base / "samples.json"
    partial = base / "samples.external.json"
    if reuse:  # analyse the recorded run again (after a fix to this script)
        if recorded.exists():
            saved = json.loads(recorded.read_text())
        elif partial.exists():  # samples of a sampler attached to a run still going: its steps so far
            saved = {"samples": json.loads(partial.read_text())["samples"], "wall": None,
                     "load_before": [float("nan")], "load_after": list(os.getloadavg())}
        else:
            sys.exit(f"--reuse: {recorded} does not exist (no profiled run in {base})")
    else:
        saved = run_pipeline(env, spill, warehouse, customers)
        recorded.write_text(json.dumps(saved))
    sampler = Sampler(0, spill, warehouse)
    sampler.samples = [tuple(s) for s in saved["samples"]]  # type: ignore[misc]
    load_before, load_after, wall = saved["load_before"], saved["load_after"], saved["wall"]

    run_id, windows = step_windows(home)
    steps = []
    for step, (start, end) in sorted(windows.items(), key=lambda item: item[1][0]):
        steps.append({"step": step, "stage": "dbt" if "dbt" in step else step_stage(step),
                      "seconds": round(end - start, 1), **sampler.peaks(start, end)})
    nodes = dbt_nodes(run_id)
    counts = table_rows(warehouse, [n["relation"] for n in nodes if n["kind"] in
                                    ("model", "seed", "snapshot")])
    for node in nodes:
        node.update(sampler.peaks(node["start"], node["end"]))
        node["table_rows"] = counts.get(node["relation"]) if node["relation"] else None
    stages: dict[str, dict[str, Any]] = {}
    for stage, start, end, seconds in (
            [(s["stage"], windows[s["step"]][0], windows[s["step"]][1], s["seconds"])
             for s in steps if s["stage"] != "dbt"]
            + [(n["stage"], n["start"], n["end"], n["seconds"]) for n in nodes]):
        entry = stages.setdefault(stage, {"start": start, "end": end, "seconds": 0.0})
        entry["start"], entry["end"] = min(entry["start"], start), max(entry["end"], end)
        entry["seconds"] += seconds
    stage_table = {
        stage: {"seconds": round(v["seconds"], 1), "span_seconds": round(v["end"] - v["start"], 1),
                **sampler.peaks(v["start"], v["end"])}
        for stage, v in sorted(stages.items(), key=lambda item: item[1]["start"])}
    peak = sampler.peaks(0, float("inf"))
    return {
        "customers": customers,
        "landing_rows": rows,
        "memory_limit": memory_limit,
        "threads": threads,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "pipeline_wall_seconds": round(wall, 1) if wall is not None else "(run unfinished)",
        "peak": peak,
        "final_warehouse_bytes": file_bytes(warehouse),
        "stages": stage_table,
        "steps": steps,
        "dbt_nodes": [{k: v for k, v in n.items() if k not in ("start", "end")} for n in nodes],
    }


def mib(value: int) -> str:
    return f"{value / 2**20:,.0f}"


def markdown(result: dict[str, Any], top: int = 15) -> str:
    lines = [f"{result['customers']:,} customers, {result['landing_rows']:,} landing rows, "
             f"memory_limit {result['memory_limit'] or 'default'}, threads "
             f"{result['threads'] or 'default'}: wall {result['pipeline_wall_seconds']} s, "
             f"peak tree RSS {mib(result['peak']['tree_rss'])} MiB, largest process "
             f"{mib(result['peak']['process_rss'])} MiB, peak spill {mib(result['peak']['spill'])}"
             f" MiB, warehouse file {mib(result['final_warehouse_bytes'])} MiB at the end (peak "
             f"{mib(result['peak']['warehouse'])} MiB); load average before/after "
             f"{result['load_before'][0]}/{result['load_after'][0]}.", "",
             "| stage | seconds | span s | peak tree RSS MiB | peak process RSS MiB | "
             "peak spill MiB |", "|---|---|---|---|---|---|"]
    for stage, v in result["stages"].items():
        lines.append(f"| {stage} | {v['seconds']} | {v['span_seconds']} | {mib(v['tree_rss'])} | "
                     f"{mib(v['process_rss'])} | {mib(v['spill'])} |")
    models = [n for n in result["dbt_nodes"] if n["kind"] in ("model", "seed", "snapshot")]
    tests = [n for n in result["dbt_nodes"] if n["kind"] not in ("model", "seed", "snapshot")]
    lines += ["", f"dbt: {len(models)} models {sum(n['seconds'] for n in models):.1f} s, "
              f"{len(tests)} tests {sum(n['seconds'] for n in tests):.1f} s (node time; two "
              "threads).", "",
              f"Top {top} dbt models by time:", "",
              "| model | folder | materialized | seconds | table rows | peak process RSS MiB | "
              "peak spill MiB |", "|---|---|---|---|---|---|---|"]
    for n in sorted(models, key=lambda n: -n["seconds"])[:top]:
        rows = (f"{n['table_rows']:,}" if n["table_rows"] is not None
                else "(view)" if n["materialized"] == "view" else "?")
        lines.append(f"| {n['name']} | {n['folder']} | {n['materialized']} | {n['seconds']:.1f} | "
                     f"{rows} | {mib(n['process_rss'])} | {mib(n['spill'])} |")
    slow_tests = sorted(tests, key=lambda n: -n["seconds"])[:5]
    lines += ["", "Slowest dbt tests: " + ", ".join(f"{n['name']} {n['seconds']:.1f} s"
                                                    for n in slow_tests)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=400_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cdp_profile"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--memory-limit", help="CDP_DUCKDB_MEMORY_LIMIT for the run, e.g. 4GiB")
    parser.add_argument("--threads", type=int, help="CDP_DUCKDB_THREADS for the run")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--reuse", action="store_true",
                        help="analyse the run recorded in the workdir again, without running")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = profile(args.customers, args.workdir, args.seed, args.memory_limit, args.threads,
                     args.reuse)
    label = f"profile-{args.customers}-{args.memory_limit or 'default'}.json"
    (args.workdir / label).write_text(json.dumps(result, indent=2))
    print(markdown(result, args.top))


if __name__ == "__main__":
    main()
