"""Crash recovery for Dagster runs: fail runs whose process is gone and free their pool slots.

A run killed with `kill -9` stays STARTED in the Dagster instance and keeps the slot it holds in
the `duckdb_warehouse` pool (limit 1), so every later run would wait for it forever. Before a
`cdp run` executes, `guard_run(instance)`:

* finds every in-progress run (STARTING, STARTED, CANCELING) of the instance and the pid of the
  process executing it, which Dagster itself records in the run's first engine event ("Executing
  steps in process (pid: N)" for in-process runs, "Started process for run (pid: N)" for runs a
  launcher started). A run whose process no longer exists (or is a zombie, or is a newer process
  that reused the pid) is marked FAILURE with a message saying why;
* frees the concurrency slots and pending steps of every run that is not in progress any more
  (`free_concurrency_slots_for_run`), the abandoned ones included;
* installs a stop guard: on SIGTERM or SIGINT Dagster interrupts the step as usual; if the run
  has not ended `CDP_STOP_GRACE_SECONDS` (default 5) later, its child processes (dbt) are killed,
  the run is marked failed, its slots are freed and the process exits with 128 + signal.
  Every write of the pipeline is a transaction, so what was committed before stays as it was.

Liveness is read from the pid, not a heartbeat: in-process runs have no run-worker heartbeat, and
the pid is known from the first step on. This assumes the Dagster storage (DAGSTER_HOME) is used
from one host, which holds for the local DuckDB warehouse; the daemon path is covered by the run
monitoring settings in orchestration/dagster.yaml (slots of ended runs freed after 30 s).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg
import psutil

LOG = logging.getLogger(__name__)
IN_PROGRESS = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
               dg.DagsterRunStatus.CANCELING)
DEFAULT_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Recovered:
    failed: list[str]  # runs marked failed because their process is gone
    freed: list[str]  # runs whose concurrency slots were freed


def run_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid executing a run and when it was recorded, from the run's first engine event."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = (data.metadata or {}).get("pid") if data else None
        if pid is not None:
            value = getattr(pid, "value", pid)
            if str(value).isdigit():
                return int(value), entry.timestamp
    return None


def process_alive(pid: int, since: float) -> bool:
    """Whether `pid` is a live process that already existed at `since` (not a reused pid)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= since + 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def abandoned_runs(instance: dg.DagsterInstance) -> list[tuple[dg.DagsterRun, int]]:
    """In-progress runs whose executing process is gone, with the pid they had."""
    found = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=list(IN_PROGRESS))):
        recorded = run_pid(instance, run.run_id)
        if recorded is not None and not process_alive(*recorded):
            found.append((run, recorded[0]))
    return found


def free_slots_of_ended_runs(instance: dg.DagsterInstance) -> list[str]:
    """Free the pool slots (and pending steps) still held by runs that are not in progress."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders = set(storage.get_concurrency_run_ids()) | {
        slot.run_id for key in storage.get_concurrency_keys()
        for slot in storage.get_concurrency_info(key).claimed_slots}
    if not holders:
        return []
    live = {run.run_id for run in instance.get_runs(
        filters=dg.RunsFilter(run_ids=list(holders), statuses=list(IN_PROGRESS)))}
    freed = sorted(holders - live)
    for run_id in freed:
        storage.free_concurrency_slots_for_run(run_id)
    return freed


def fail_runs(instance: dg.DagsterInstance, runs: Iterable[tuple[dg.DagsterRun, int]],
              why: str) -> list[str]:
    failed = []
    for run, pid in runs:
        instance.report_run_failed(run, message=f"{why} (pid {pid}); marked failed by "
                                                "orchestration.recovery, its pool slots freed")
        failed.append(run.run_id)
    return failed


def recover_abandoned_runs(instance: dg.DagsterInstance) -> Recovered:
    """Mark runs whose process is gone failed and free every slot held by a run not running."""
    failed = fail_runs(instance, abandoned_runs(instance), "the process executing the run ended")
    freed = free_slots_of_ended_runs(instance)
    for run_id in failed:
        LOG.warning("run %s was abandoned (its process is gone): marked failed", run_id)
    return Recovered(failed, freed)


def own_runs(instance: dg.DagsterInstance) -> list[tuple[dg.DagsterRun, int]]:
    """In-progress runs executed by this process."""
    me = os.getpid()
    return [(run, me) for run in instance.get_runs(filters=dg.RunsFilter(
        statuses=list(IN_PROGRESS))) if (run_pid(instance, run.run_id) or (None,))[0] == me]


def stop_now(instance: dg.DagsterInstance, signum: int) -> None:
    """Kill our child processes, fail our runs, free their slots, exit 128 + signal."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=2)
    try:
        fail_runs(instance, own_runs(instance),
                  f"stopped by {signal.Signals(signum).name} after the grace period")
        free_slots_of_ended_runs(instance)
    finally:
        print(f"cdp: stopped by {signal.Signals(signum).name}; committed work is kept",
              file=sys.stderr, flush=True)
        os._exit(128 + signum)


class StopGuard:
    """Bounds how long SIGTERM/SIGINT can take, whatever handler Dagster installs.

    Python writes every received signal number to the wakeup fd before running the handler, so
    a thread reading it sees the signal even while Dagster's own handler is the active one."""

    def __init__(self, instance: dg.DagsterInstance, grace_seconds: float) -> None:
        self.instance = instance
        self.grace = grace_seconds
        self.reader, writer = socket.socketpair()
        writer.setblocking(False)
        self.writer = writer
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        threading.Thread(target=self.watch, name="cdp-stop-guard", daemon=True).start()

    def watch(self) -> None:
        first: tuple[int, float] | None = None
        self.reader.settimeout(0.2)
        while True:
            try:
                data = self.reader.recv(16)
            except TimeoutError:
                data = b""
            except OSError:
                return
            for signum in data:
                if signum in (signal.SIGTERM, signal.SIGINT):
                    if first is not None:  # a second stop request: no more grace
                        stop_now(self.instance, signum)
                    first = (signum, time.monotonic())
                    print(f"cdp: {signal.Signals(signum).name} received, stopping (at most "
                          f"{self.grace:g} s)", file=sys.stderr, flush=True)
            if first is not None and time.monotonic() - first[1] >= self.grace:
                stop_now(self.instance, first[0])


def grace_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("CDP_STOP_GRACE_SECONDS", DEFAULT_GRACE_SECONDS)))
    except ValueError:
        return DEFAULT_GRACE_SECONDS


def guard_run(instance: dg.DagsterInstance) -> Recovered:
    """Before a run: recover abandoned runs, then bound how long a stop signal can take."""
    recovered = recover_abandoned_runs(instance)
    for run_id in recovered.failed:
        print(f"cdp: run {run_id} had been abandoned (process gone): marked failed, "
              "its warehouse pool slot freed", file=sys.stderr)
    if threading.current_thread() is threading.main_thread():
        StopGuard(instance, grace_seconds())
    return recovered
