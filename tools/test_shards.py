"""Run the whole test suite as two pytest processes side by side, each in its own project copy.

`make test` calls this. The suite is a series of subprocesses (dbt, `cdp run`, Spark, PostgreSQL)
that keep one of the machine's two cores busy most of the time, so two shards take about half the
wall time of one. They must not share anything a run writes: the project's `target/` (manifest
and partial parse, written by every `cdp run` with its own env), `logs/`, the Dagster home and
the generated models. So the second shard runs in a copy of the project (same virtualenv,
PYTHONPATH pointing at the copy, its own `cdp prepare`), and every module that uses the Spark
Thrift server runs in the first shard: the heaviest engine starts once.

With test paths or `-k` among the arguments (a developer running part of the suite), it runs one
pytest in place, as before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
TESTS = PROJECT / "tests"

# Modules that stay in the project itself (shard 0): those on the Spark Thrift server (one
# server for the session), the two that share the declared-inputs run and check with git that
# the repository's examples are untouched (the copy has no .git), and enough DuckDB modules to
# balance the shards (figures from `--durations`, docs/benchmarks.md "Test suite in two shards").
IN_PLACE = {
    # Spark
    "test_activation_target.py", "test_engines_pipeline.py", "test_ingestion_targets.py",
    "test_inputs_compiler.py", "test_predictions.py", "test_privacy_targets.py",
    "test_publication.py", "test_quality.py", "test_sensors_triggers.py", "test_serving.py",
    "test_spark_server.py", "test_warehouse_interface.py",
    # git, and the shared declared_inputs_run
    "test_inputs_examples.py", "test_inputs_presets.py",
    # balance: on 2026-12-03 the Spark shard took 1,705 s, the other 3,040 s; these four
    # (217, 172, 167 and 135 s there) move about half the difference
    "test_pipeline.py", "test_pipeline_edge_shops.py", "test_run_isolation.py",
    "test_segment_history.py",
}
# What a copy leaves out: the virtualenv is linked, built and run state is the copy's own.
NOT_COPIED = (".git", ".venv", "data", "target", "logs", ".dagster_home", "__pycache__",
              ".pytest_cache", "test-artifacts", "*.duckdb", "*.duckdb.wal")


def selects_tests(args: list[str]) -> bool:
    """Whether the arguments pick tests themselves (paths, node ids, -k, -m)."""
    if any(arg in ("-k", "-m") or arg.startswith(("-k=", "-m=")) for arg in args):
        return True
    return any(not arg.startswith("-") and Path(arg.split("::")[0]).exists() for arg in args)


def shards() -> tuple[list[str], list[str]]:
    modules = sorted(p.name for p in TESTS.glob("test_*.py"))
    unknown = IN_PLACE - set(modules)
    if unknown:
        raise SystemExit(f"tools/test_shards.py names test modules that do not exist: {unknown}")
    return ([f"tests/{m}" for m in modules if m in IN_PLACE],
            [f"tests/{m}" for m in modules if m not in IN_PLACE])


def project_copy(root: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the project under `root`, prepared as `make parse` prepares the project, and
    the environment that points every process of the shard at it."""
    copy = root / "project"
    shutil.copytree(PROJECT, copy, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
    (copy / ".venv").symlink_to(PROJECT / ".venv")
    home = copy / ".dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(copy), *filter(None, [os.environ.get(
               "PYTHONPATH")])]),
           "DAGSTER_HOME": str(home),
           "CDP_LANDING_DIR": str(copy / "data" / "landing"),
           "CDP_WAREHOUSE": str(copy / "data" / "warehouse.duckdb")}
    subprocess.run([sys.executable, "-m", "orchestration.cli", "prepare"], cwd=copy, env=env,
                   check=True)
    return copy, env


def suite_exit_code(codes: list[int]) -> int:
    """The first shard's failure, 1 for a shard killed by a signal (it exits negative), else 0."""
    return next((code if code > 0 else 1 for code in codes if code), 0)


def stream(name: str, process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(f"[{name}] {line}")
        sys.stdout.flush()


def main(args: list[str]) -> int:
    if selects_tests(args):
        return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=PROJECT).returncode
    in_place, copied = shards()
    with tempfile.TemporaryDirectory(prefix="cdp-test-shard-") as tmp:
        copy, env = project_copy(Path(tmp))
        processes = {
            "shard 0": subprocess.Popen(
                [sys.executable, "-m", "pytest", *args, "--basetemp", f"{tmp}/basetemp0",
                 *in_place], cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True),
            "shard 1": subprocess.Popen(
                [sys.executable, "-m", "pytest", *args, "--basetemp", f"{tmp}/basetemp1",
                 *copied], cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True),
        }
        readers = [threading.Thread(target=stream, args=item) for item in processes.items()]
        for reader in readers:
            reader.start()
        codes = {name: process.wait() for name, process in processes.items()}
        for reader in readers:
            reader.join()
    for name, code in codes.items():
        print(f"{name}: pytest exited {code}")
    return suite_exit_code(list(codes.values()))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
