"""What a pipeline run did, for people: progress per step while it runs, a summary and an exit code.

`RunTracker` follows the Dagster events of one run (it is fed by a logger, see `progress_logger`),
prints a line per step (position, elapsed time, outcome) and collects every asset check
evaluation. `RunTracker.report()` then says what ran, what did not run and why, every failed or
warning check with its figure, and the exit code (docs/operations.md):

* 0: every step succeeded; checks passed or only warned;
* 1: a step failed, or a check of ERROR severity failed (something a person must act on);
* 2: usage or configuration error (decided by the CLI before a run starts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import dagster as dg
from dagster._core.log_manager import get_log_record_metadata, has_log_record_metadata

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return "(no message)"


@dataclass
class StepOutcome:
    key: str
    status: str = "running"  # running, succeeded, failed, skipped, not run
    seconds: float | None = None
    reason: str = ""
    materialised: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CheckOutcome:
    asset: str
    name: str
    passed: bool
    severity: str  # ERROR or WARN
    figure: str

    @property
    def label(self) -> str:
        return f"{self.asset} {self.name}"


def check_figure(metadata: Mapping[str, Any], description: str | None) -> str:
    """The one line that says what a check measured: its `figure`, else what dbt counted."""
    def value(key: str) -> Any:
        entry = metadata.get(key)
        return getattr(entry, "value", entry)

    if value("figure"):
        return str(value("figure"))
    failed_rows = value("dagster_dbt/failed_row_count")
    if failed_rows is not None:
        return f"{failed_rows:,} failing rows" + (f" ({first_line(description)})"
                                                  if description else "")
    return first_line(description) if description else "(no figure recorded)"


def error_lines(error: Any, limit: int = 6) -> list[str]:
    """The message of a Dagster error (no traceback), its class without the module path."""
    lines = [line.rstrip() for line in (error.message or "").splitlines() if line.strip()]
    if not lines:
        return ["(no message)"]
    head, _, rest = lines[0].partition(": ")
    if rest and head.endswith(error.cls_name):
        lines[0] = f"{error.cls_name}: {rest}"
    return lines[:limit] + ([f"... ({len(lines) - limit} more lines in the run log)"]
                            if len(lines) > limit else [])


def error_text(error: Any) -> str:
    """What went wrong, from a step failure: the user's error (and its cause), never Dagster's
    wrapper; continuation lines (e.g. the loader's list of files and columns) are kept."""
    if error is None:
        return "(no error recorded)"
    cause = error.cause
    if cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error, cause = cause, cause.cause  # "Error occurred while executing op": say what
    lines = error_lines(error)
    if cause is not None:
        lines.append("cause: " + " / ".join(error_lines(cause, limit=2)))
    return "\n             ".join(lines)


@dataclass
class RunTracker:
    """Collects a run's step and check events; prints a progress line per step to `out`."""

    total_steps: int
    out: TextIO | None = None
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    steps: dict[str, StepOutcome] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)
    _step_started: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = self.clock()

    # ---- events

    def on_event(self, event: dg.DagsterEvent) -> None:
        key = event.step_key
        if event.is_step_start and key:
            self._step_started[key] = self.clock()
            self.steps[key] = StepOutcome(key)
            self._print(f"[{len(self.steps):>2}/{self.total_steps}] {self._elapsed()}  {key} ...",
                        end="")
        elif event.is_step_success and key:
            self._finish(key, "succeeded", "")
        elif event.is_step_failure and key:
            self._finish(key, "failed", error_text(event.step_failure_data.error))
        elif event.is_step_skipped and key:
            self.steps[key] = StepOutcome(key, "skipped",
                                          reason="an output it needs was not produced")
            self._print(f"[--/{self.total_steps}] {self._elapsed()}  {key} skipped")
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION and key in self.steps:
            self.steps[key].materialised.append(event.asset_key.to_user_string())
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            self._check(event.event_specific_data)

    def _finish(self, key: str, status: str, reason: str) -> None:
        outcome = self.steps.setdefault(key, StepOutcome(key))
        outcome.status, outcome.reason = status, reason
        outcome.seconds = self.clock() - self._step_started.get(key, self.started)
        detail = f" ({len(outcome.materialised)} assets)" if len(outcome.materialised) > 1 else ""
        word = "ok" if status == "succeeded" else "FAILED"
        self._print(f" {word} {outcome.seconds:.1f} s{detail}")

    def _check(self, evaluation: Any) -> None:
        severity = getattr(evaluation.severity, "value", str(evaluation.severity))
        self.checks.append(CheckOutcome(
            asset=evaluation.asset_key.to_user_string(), name=evaluation.check_name,
            passed=bool(evaluation.passed), severity=severity,
            figure=check_figure(evaluation.metadata or {}, evaluation.description)))

    def _elapsed(self) -> str:
        seconds = int(self.clock() - self.started)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def _print(self, text: str, end: str = "\n") -> None:
        if self.out is not None:
            print(text, end=end, file=self.out, flush=True)

    # ---- after the run

    def report(self, run_id: str, dependencies: Mapping[str, Iterable[str]]) -> RunReport:
        """Steps that never started become `not run`, with the upstream steps that stopped them."""
        steps = dict(self.steps)
        for key in dependencies:
            if key not in steps:
                steps[key] = StepOutcome(key, "not run")
        for key, outcome in steps.items():
            if outcome.status == "not run":
                blockers = sorted(up for up in dependencies.get(key, ())
                                  if steps.get(up, StepOutcome(up)).status != "succeeded")
                outcome.reason = ("upstream " + ", ".join(blockers) + " did not succeed"
                                  if blockers else "not started")
        return RunReport(run_id=run_id, seconds=self.clock() - self.started,
                         steps=list(steps.values()), checks=list(self.checks))


@dataclass(frozen=True)
class RunReport:
    run_id: str
    seconds: float
    steps: list[StepOutcome]
    checks: list[CheckOutcome]

    @property
    def materialised(self) -> set[str]:
        """Every asset this run materialised (`customers`, `activation/customers_to_files`)."""
        return {key for step in self.steps for key in step.materialised}

    def by_status(self, status: str) -> list[StepOutcome]:
        return [s for s in self.steps if s.status == status]

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.passed and c.severity == "ERROR"]

    @property
    def warning_checks(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.passed and c.severity != "ERROR"]

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.by_status("failed") or self.failed_checks else EXIT_OK

    def render(self) -> str:
        succeeded, failed = self.by_status("succeeded"), self.by_status("failed")
        not_run = self.by_status("not run") + self.by_status("skipped")
        lines = [f"Run {self.run_id[:8]} took {self.seconds:.0f} s: {len(succeeded)} steps "
                 f"succeeded, {len(failed)} failed, {len(not_run)} did not run."]
        lines += [f"  FAILED   {s.key}: {s.reason}" for s in failed]
        lines += [f"  NOT RUN  {s.key}: {s.reason}" for s in not_run]
        passed = sum(c.passed for c in self.checks)
        lines.append(f"Checks: {passed} passed, {len(self.failed_checks)} failed, "
                     f"{len(self.warning_checks)} warnings.")
        lines += [f"  ERROR    {c.label}: {c.figure}" for c in self.failed_checks]
        lines += [f"  WARN     {c.label}: {c.figure}" for c in self.warning_checks]
        if self.exit_code == EXIT_OK:
            verdict = "with warnings" if self.warning_checks else "cleanly"
            lines.append(f"pipeline succeeded {verdict} (run {self.run_id}): exit 0")
        else:
            lines.append(f"pipeline FAILED (run {self.run_id}): exit 1, see the FAILED/ERROR "
                         "lines above")
        return "\n".join(lines)


def step_dependencies(job: dg.JobDefinition) -> dict[str, set[str]]:
    """Each step (node) of the job and the steps it waits for."""
    structure = job.graph.dependency_structure
    out: dict[str, set[str]] = {}
    for node in job.graph.nodes:
        upstream = structure.input_to_upstream_outputs_for_node(node.name)
        out[node.name] = {o.node.name for outputs in upstream.values() for o in outputs}
    return out


class _EventHandler(logging.Handler):
    def __init__(self, tracker: RunTracker) -> None:
        super().__init__(level=logging.DEBUG)
        self.tracker = tracker

    def emit(self, record: logging.LogRecord) -> None:
        if not has_log_record_metadata(record):
            return
        event = get_log_record_metadata(record).get("dagster_event")
        if event is not None:
            self.tracker.on_event(event)


def progress_logger(tracker: RunTracker) -> dg.LoggerDefinition:
    """A Dagster logger that hands every event of the run to `tracker`."""
    def init(_context: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger("cdp.run.progress", level=logging.DEBUG)
        logger.addHandler(_EventHandler(tracker))
        return logger

    return dg.LoggerDefinition(init, description="cdp run progress and summary")


def file_logger(path: str) -> dg.LoggerDefinition:
    """A Dagster logger writing every message of the run, DEBUG included, to `path`."""
    def init(_context: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger("cdp.run.file", level=logging.DEBUG)
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        return logger

    return dg.LoggerDefinition(init, description="every Dagster message of the run, to a file")
