"""Crash recovery: a `cdp run` killed with SIGKILL never blocks the next one; SIGTERM stops a run.

Real `cdp run` subprocesses on the small sample with a Dagster instance in tmp_path (the
project's dagster.yaml: one duckdb_warehouse slot), a real webhook receiver for the sync.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
import pytest
import yaml

from orchestration.recovery import process_alive, recover_abandoned_runs
from orchestration.settings import PROJECT_DIR
from activation_support.http_server import LocalDestination

RUN_TIMEOUT = 900  # a run that waits for a dead run's slot fails the test instead of hanging
STOP_WITHIN_SECONDS = 15
SYNC_SCRIPT = """
import dagster as dg
from orchestration.definitions import defs
from orchestration.recovery import guard_run

instance = dg.DagsterInstance.get()
guard_run(instance)
job = defs.resolve_implicit_global_asset_job_def()
result = job.execute_in_process(instance=instance, raise_on_error=False,
                                asset_selection=[dg.AssetKey(["activation", "late_hook"])])
raise SystemExit(0 if result.success else 1)
"""


def sync(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "source": "main_marts.customers", "primary_key": "customer_id",
            "mode": "mirror", "batch_size": 100, "fields": {"customer_id": "customer_id"},
            "destination": {"type": "http", "url": url, "timeout_seconds": 10},
            "retry": {"max_attempts": 2, "initial_backoff_seconds": 0.1}, **extra}


def environment(tmp_path: Path, landing: Path, server: LocalDestination) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    syncs = tmp_path / "syncs.yml"
    syncs.write_text(yaml.safe_dump({"syncs": [
        sync("hook", f"{server.url}/hook"),
        sync("late_hook", f"{server.url}/late", requires_env=["CDP_TEST_LATE_HOOK"]),
    ]}, sort_keys=False))
    env = {**os.environ, "CDP_LANDING_DIR": str(landing),
           "CDP_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
           "CDP_PUBLICATION": str(tmp_path / "publication.duckdb"),
           "CDP_ACTIVATION_DIR": str(tmp_path / "activation"),
           "CDP_SERVING_SNAPSHOT": str(tmp_path / "serving.duckdb"),
           "CDP_DBT_TARGET": "duckdb", "DAGSTER_HOME": str(home),
           "CDP_ACTIVATION_CONFIG": str(syncs), "PYTHONPATH": str(PROJECT_DIR)}
    env.pop("CDP_AS_OF", None)
    env.pop("CDP_TEST_LATE_HOOK", None)
    return env


def start(env: dict[str, str], tmp_path: Path, name: str,
          command: list[str] | None = None) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(command or [sys.executable, "-m", "orchestration.cli", "run"],
                            env=env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for_dbt(process: subprocess.Popen[bytes], timeout: float = 300) -> list[psutil.Process]:
    """Block until the run has a dbt subprocess (it is mid-dbt) and return it, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before dbt started"
        try:
            children = psutil.Process(process.pid).children(recursive=True)
            dbt = [c for c in children if {"dbt", "build"} <= set(
                Path(part).name for part in c.cmdline())]
            if dbt:
                return dbt
        except psutil.Error:
            pass
        time.sleep(0.2)
    raise AssertionError("no dbt subprocess within the timeout")


def instance_of(env: dict[str, str]) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def statuses(env: dict[str, str]) -> list[dg.DagsterRunStatus]:
    with instance_of(env) as instance:
        return [run.status for run in reversed(instance.get_runs())]


def held_slots(env: dict[str, str]) -> set[str]:
    """Runs holding a pool slot or a pending step."""
    with instance_of(env) as instance:
        storage = instance.event_log_storage
        return set(storage.get_concurrency_run_ids()) | {
            slot.run_id for key in storage.get_concurrency_keys()
            for slot in storage.get_concurrency_info(key).claimed_slots}


def log_text(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def server():
    with LocalDestination() as destination:
        yield destination


POOLED_SCRIPT = """
import time
import dagster as dg

@dg.asset(pool="duckdb_warehouse")
def holds_the_warehouse_slot() -> None:
    time.sleep({seconds})

result = dg.materialize([holds_the_warehouse_slot], instance=dg.DagsterInstance.get())
raise SystemExit(0 if result.success else 1)
"""


def test_a_dead_runs_slot_is_freed_and_the_next_pooled_run_proceeds(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(PROJECT_DIR)}
    holder = start(env, tmp_path, "holder",
                   [sys.executable, "-c", POOLED_SCRIPT.format(seconds=300)])
    deadline = time.monotonic() + 120
    while not held_slots(env):
        assert time.monotonic() < deadline and holder.poll() is None, log_text(tmp_path, "holder")
        time.sleep(0.2)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    (stale,) = held_slots(env)

    with instance_of(env) as instance:
        recovered = recover_abandoned_runs(instance)
        assert recovered.failed == [stale] and stale in recovered.freed
        assert instance.get_run_by_id(stale).status == dg.DagsterRunStatus.FAILURE
        assert recover_abandoned_runs(instance).failed == []  # once only
    assert held_slots(env) == set()
    after = subprocess.run([sys.executable, "-c", POOLED_SCRIPT.format(seconds=0)], env=env,
                           cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
    assert after.returncode == 0, after.stdout[-2000:] + after.stderr[-2000:]


def test_a_live_process_is_alive_and_a_reused_pid_is_not() -> None:
    me = psutil.Process()
    assert process_alive(me.pid, since=time.time())
    assert not process_alive(me.pid, since=me.create_time() - 60)  # pid recorded before it existed
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_alive(child.pid, since=time.time())


@pytest.mark.slow
def test_sigterm_stops_a_run_within_seconds_and_leaves_no_run_started(
        tmp_path: Path, sample_landing: Path, server: LocalDestination) -> None:
    env = environment(tmp_path, sample_landing, server)
    process = start(env, tmp_path, "stopped")
    dbt = wait_for_dbt(process)
    sent = time.monotonic()
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=60)
    took = time.monotonic() - sent
    assert took < STOP_WITHIN_SECONDS, f"stopping took {took:.1f}s\n" + log_text(tmp_path,
                                                                              "stopped")
    assert process.returncode != 0
    assert statuses(env) == [dg.DagsterRunStatus.FAILURE]
    assert held_slots(env) == set()
    assert not [c for c in dbt if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
def test_after_kill_9_mid_dbt_and_mid_sync_the_next_runs_complete_and_deliver_once(
        tmp_path: Path, sample_landing: Path, server: LocalDestination) -> None:
    env = environment(tmp_path, sample_landing, server)
    killed = start(env, tmp_path, "killed")
    wait_for_dbt(killed)
    os.killpg(killed.pid, signal.SIGKILL)  # the run and its dbt process, as a crash would
    killed.wait(timeout=30)
    assert statuses(env) == [dg.DagsterRunStatus.STARTED] and held_slots(env)

    completed = start(env, tmp_path, "completed")
    completed.wait(timeout=RUN_TIMEOUT)
    assert completed.returncode == 0, log_text(tmp_path, "completed")[-4000:]
    assert "had been abandoned" in log_text(tmp_path, "completed")
    assert statuses(env) == [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS]
    hook = [r for r in server.state.requests if r["path"] == "/hook"]
    keys = [row["key"] for r in hook for row in r["body"]["rows"]]
    assert len(keys) > 100 and len(keys) == len(set(keys))  # each key once, batches of 100

    # mid-sync: the webhook sees the second batch, the process dies before it is acknowledged
    env["CDP_TEST_LATE_HOOK"] = "1"
    command = [sys.executable, "-c", SYNC_SCRIPT]
    syncing: list[subprocess.Popen[bytes]] = []

    def kill_on_second_batch(request: dict[str, Any]) -> None:
        late = [r for r in server.state.requests if r["path"] == "/late"]
        if len(late) == 2 and syncing:
            os.killpg(syncing[0].pid, signal.SIGKILL)
            time.sleep(0.5)

    server.state.behaviour.on_request = kill_on_second_batch
    syncing.append(start(env, tmp_path, "sync_killed", command))
    syncing[0].wait(timeout=RUN_TIMEOUT)
    assert syncing[0].returncode == -signal.SIGKILL, log_text(tmp_path, "sync_killed")[-3000:]
    server.state.behaviour.on_request = None
    resumed = start(env, tmp_path, "sync_resumed", command)
    resumed.wait(timeout=RUN_TIMEOUT)
    assert resumed.returncode == 0, log_text(tmp_path, "sync_resumed")[-4000:]
    assert statuses(env)[-2:] == [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS]
    assert held_slots(env) == set()
    late_keys = {row["key"] for r in server.state.requests if r["path"] == "/late"
                 for row in r["body"]["rows"]}
    assert late_keys == set(keys)  # nothing lost
    assert set(server.state.applied.values()) == {2}  # once per sync: hook and late_hook
