"""Benchmark executing the privacy requests of a run on generated warehouses of several sizes.

For each size it generates landing data (`cdp generate`), loads it, runs `dbt build` without
tests and prediction models (CDP_DBT_TARGET=duckdb) and keeps that warehouse as a base (reused
on later runs). Each measured run copies the base and times `execute_privacy_requests` on the
copy, in a fresh process per run. `--module FILE` times another copy of orchestration/privacy.py (the old
one-request-at-a-time code, for comparison); `--timeout` stops a run that takes too long.

    PYTHONPATH=. .venv/bin/python -m bench.privacy_requests --sizes 5000 50000 \
        --workdir /tmp/privacy_bench [--module /tmp/privacy_old.py --timeout 300]

Prints a Markdown table; record figures in docs/benchmarks.md ("Privacy requests").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}"
                         f"{result.stderr[-3000:]}")


def base_warehouse(size: int, workdir: Path) -> Path:
    """Generate, load and build a warehouse of `size` customers once; later calls reuse it."""
    base = workdir / f"base_{size}.duckdb"
    if base.exists():
        return base
    landing = workdir / f"landing_{size}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not landing.exists():
        run([sys.executable, "-m", "orchestration.cli", "generate", "--customers", str(size),
             "--seed", "42", "--out", str(landing)], env)
    building = workdir / f"building_{size}.duckdb"
    building.unlink(missing_ok=True)
    run([sys.executable, "-c",
         "import sys, duckdb; from pathlib import Path; "
         "from orchestration.ingestion import load_landing; "
         "con = duckdb.connect(sys.argv[2]); load_landing(Path(sys.argv[1]), con); con.close()",
         str(landing), str(building)], env)
    # predictions come from a Python asset that is not run here (as in tests/test_privacy.py)
    run([str(BIN / "dbt"), "build", "--exclude-resource-type", "test", "unit_test",
         "--exclude", "int_customer_predictions+",
         "--profiles-dir", "profiles", "--target-path", str(workdir / f"dbt_target_{size}"),
         "--log-path", str(workdir / f"dbt_logs_{size}"), "--quiet"],
        {**env, "CDP_WAREHOUSE": str(building), "CDP_DBT_TARGET": "duckdb"})
    building.rename(base)
    return base


def time_requests(warehouse: Path, module_file: str | None, exports: Path) -> dict[str, object]:
    """In this process: execute the warehouse's new requests once, timed."""
    import duckdb

    if module_file:
        spec = importlib.util.spec_from_file_location("privacy_under_test", module_file)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        from orchestration import privacy as module
    os.environ["CDP_PRIVACY_EXPORT_DIR"] = str(exports)
    with duckdb.connect(str(warehouse)) as con:
        module.ensure_privacy_tables(con)
        requests = len(module.new_requests(con))
        start = time.perf_counter()
        report = module.execute_privacy_requests(con)
        seconds = time.perf_counter() - start
    return {"requests": requests, "seconds": round(seconds, 1), "statuses": report.counts()}


def measure(size: int, workdir: Path, module_file: str | None,
            timeout: float) -> dict[str, object]:
    base = base_warehouse(size, workdir)
    copy = workdir / f"run_{size}.duckdb"
    shutil.copyfile(base, copy)
    exports = workdir / f"exports_{size}"
    shutil.rmtree(exports, ignore_errors=True)
    command = [sys.executable, "-m", "bench.privacy_requests", "--one", str(copy),
               "--exports", str(exports)] + (["--module", module_file] if module_file else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"size": size, "seconds": f"> {timeout:.0f} (stopped)", "requests": "?"}
    finally:
        copy.unlink(missing_ok=True)
        Path(f"{copy}.wal").unlink(missing_ok=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return {"size": size, **json.loads(result.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/privacy_bench"))
    parser.add_argument("--module", help="another copy of orchestration/privacy.py to time")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--exports", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(time_requests(args.one, args.module, args.exports)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        if args.prepare_only:
            print(f"{size}: {base_warehouse(size, args.workdir)}", flush=True)
            continue
        row = measure(size, args.workdir, args.module, args.timeout)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if rows:
        print(f"\ncode: {args.module or 'orchestration/privacy.py'}\n")
        print("| customers | requests | seconds | statuses |\n| ---: | ---: | ---: | --- |")
        for row in rows:
            print(f"| {row['size']:,} | {row['requests']} | {row['seconds']} "
                  f"| {row.get('statuses', '')} |")


if __name__ == "__main__":
    main()
