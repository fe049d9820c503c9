"""The `cdp` command line: run the pipeline, summarise the warehouse, generate sample data."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestration.settings import default_salt_warning, load_settings, report_dir

if TYPE_CHECKING:
    from orchestration.run_report import RunReport
    from orchestration.settings import Settings
    from orchestration.warehouse import Warehouse

JOB_NAME = "cdp_full_pipeline"


def run_pipeline(verbose: bool = False) -> int:
    """Execute the full-pipeline job in-process on the configured Dagster instance.

    Prints a progress line per step and a summary (orchestration/run_report.py); every Dagster
    message and library output goes to the run log (`run_log_path()`), or to the terminal too
    with `verbose`. Exit codes: 0 ok (warnings allowed), 1 a step or ERROR check failed,
    2 usage or configuration error (docs/operations.md)."""
    import dagster as dg

    from orchestration.recovery import guard_run
    from orchestration.run_report import EXIT_USAGE

    if landing_settings() is None:
        return EXIT_USAGE
    if (prepared := prepare()) != 0:
        return prepared
    instance = dg.DagsterInstance.get() if _has_dagster_home() else dg.DagsterInstance.ephemeral()
    guard_run(instance)  # fail runs whose process is gone, free their slots; bound SIGTERM
    exit_code = execute_with_report(instance, verbose).exit_code
    print_inputs_present()
    return exit_code


def print_inputs_present() -> None:
    """After a run: which inputs had rows (`input_lines`); a warehouse that cannot be read
    (the run failed before loading) is said in one line, never an error of its own."""
    from orchestration.warehouse import open_warehouse

    settings = load_settings()
    try:
        wh = open_warehouse(settings.dbt_target, settings.warehouse, read_only=True)
    except Exception as error:  # noqa: BLE001 (a driver's error: locked file, server down)
        print(f"inputs: not read ({type(error).__name__}: {error})")
        return
    try:
        print("\n".join(input_lines(wh)))
    finally:
        wh.close()


def landing_settings() -> Settings | None:
    """The settings, exported to the environment, when they are valid and the landing folder
    exists (with the public-salt warning on real data); else None, the error printed."""
    try:
        settings = load_settings()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    settings.export_env()
    if not settings.landing_dir.is_dir():
        print(f"error: landing folder {settings.landing_dir} does not exist (set CDP_LANDING_DIR)",
              file=sys.stderr)
        return None
    if salt_warning := default_salt_warning(settings.landing_dir):
        print(salt_warning, file=sys.stderr)
    return settings


def load() -> int:
    """Only the loading steps of a run, on the dbt target (CDP_DBT_TARGET): the landing folder
    into raw (with the privacy steps the Dagster asset runs at load, an empty raw table for
    every source without files, the load log and rejects) and the phone lookup raw._phone_numbers,
    i.e. every dbt source a run creates before dbt; then `dbt build` works on its own (README,
    "dbt on its own"). Prints the load summary and the inputs; 0 ok, 1 a source failed to load
    (the others are loaded, it keeps its last good rows), 2 usage or configuration error."""
    from orchestration.ingestion.assets import PRIVACY_AT_LOAD
    from orchestration.ingestion.errors import LandingError
    from orchestration.ingestion.reports import LandingLoadError
    from orchestration.ingestion.target import load_landing_into
    from orchestration.run_report import EXIT_FAILED, EXIT_OK, EXIT_USAGE
    from orchestration.warehouse import WarehouseError, open_warehouse

    if (settings := landing_settings()) is None:
        return EXIT_USAGE
    try:
        wh = open_warehouse(settings.dbt_target, settings.warehouse)
    except WarehouseError as error:
        print(f"error: cdp load: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 (a driver's error: locked file, server down)
        print(f"error: cdp load: cannot open the {settings.dbt_target} target: "
              f"{type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    try:
        try:
            report = load_landing_into(settings.landing_dir, wh, privacy=PRIVACY_AT_LOAD)
        except LandingLoadError as error:
            print(error.report.summary())
            print(f"error: cdp load: {error}", file=sys.stderr)
            return EXIT_FAILED
        except LandingError as error:
            print(f"error: cdp load: {error}", file=sys.stderr)
            return EXIT_FAILED
        except Exception as error:  # noqa: BLE001 (the phone lookup or privacy step, a driver)
            print(f"error: cdp load: the load stopped on {settings.dbt_target}: "
                  f"{type(error).__name__}: {error}; each source already loaded is committed, "
                  "the others are as they were", file=sys.stderr)
            return EXIT_FAILED
        print(report.summary())
        print("\n".join(input_lines(wh)))
    finally:
        wh.close()
    return EXIT_OK


def prepare() -> int:
    """Compile the segment YAML and parse dbt with the pipeline's env before the definitions
    load (`make parse` runs this too), so no dbt step of the run parses the project again.
    Invalid segment YAML is a warning here (its check fails in the run); 2 if dbt cannot parse."""
    import subprocess

    from orchestration.dbt_project import prepare_project

    try:
        problem = prepare_project()
    except subprocess.CalledProcessError:
        print("error: `dbt parse` failed (its messages are above)", file=sys.stderr)
        return 2
    if problem:
        print(f"warning: segments not recompiled, the last good model stays: {problem}",
              file=sys.stderr)
    return 0


def run_log_path() -> Path:
    """Where `cdp run` writes every Dagster message: CDP_RUN_LOG, default logs/cdp-run.log."""
    import os

    from orchestration.settings import PROJECT_DIR

    path = Path(os.environ.get("CDP_RUN_LOG") or "logs/cdp-run.log").expanduser()
    return path if path.is_absolute() else PROJECT_DIR / path


def execute_with_report(instance: Any, verbose: bool = False) -> RunReport:
    """Run the job with the progress and file loggers; print and return the summary."""
    import contextlib

    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.run_report import (RunTracker, file_logger, progress_logger,
                                          step_dependencies)

    job = defs.resolve_job_def(JOB_NAME)
    dependencies = step_dependencies(job)
    tracker = RunTracker(total_steps=len(dependencies), out=sys.stdout)
    log_path = run_log_path()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")  # the log of the latest run
    loggers = {"cdp_progress": progress_logger(tracker), "cdp_file": file_logger(str(log_path))}
    if verbose:
        loggers["console"] = dg.colored_console_logger
    job = job.with_logger_defs(loggers)
    print(f"cdp run: {len(dependencies)} steps; Dagster log: {log_path}"
          + ("" if verbose else " (--verbose shows it here)"), flush=True)
    with open(log_path, "a", encoding="utf-8") as log_file:
        # dbt's own output, library progress bars and warnings (GX) go to the log; the tracker
        # keeps the terminal's stdout for its progress lines
        with contextlib.ExitStack() as quiet:
            if not verbose:
                quiet.enter_context(contextlib.redirect_stdout(log_file))
                quiet.enter_context(contextlib.redirect_stderr(log_file))
            result = job.execute_in_process(
                instance=instance, raise_on_error=False,
                run_config={"loggers": {name: ({"config": {"log_level": "DEBUG"}}
                                               if name == "console" else {})
                                        for name in loggers}})
    report = tracker.report(result.run_id, dependencies)
    print(report.render(), file=sys.stdout if report.exit_code == 0 else sys.stderr)
    return report


def _has_dagster_home() -> bool:
    import os

    home = os.environ.get("DAGSTER_HOME")
    return bool(home) and Path(home).is_dir()


def summary_relations() -> list[str]:
    """The relations `cdp summary` counts, sorted: every dbt model, seed, snapshot and source
    table (the manifest), and the tables the Python assets own (their modules name them)."""
    from orchestration.activation.state import ROW_ERRORS, RUNS, STATE
    from orchestration.catalog import catalog
    from orchestration.ingestion.schema import LOAD_LOG_NAME, LOAD_REJECTS_NAME
    from orchestration.privacy.audit import LOG, REQUESTS, SUPPRESSION
    from orchestration.quality import HISTORY

    cat = catalog()
    manifest = cat.manifest
    relations = {f"{n['schema']}.{n.get('alias') or n['name']}"
                 for n in manifest.get("nodes", {}).values()
                 if n.get("resource_type") in ("model", "seed", "snapshot")}
    relations |= {f"{n['schema']}.{n.get('identifier') or n['name']}"
                  for n in manifest.get("sources", {}).values()}
    relations |= {STATE, RUNS, ROW_ERRORS, REQUESTS, LOG, SUPPRESSION, HISTORY,
                  cat.raw_relation(LOAD_LOG_NAME), cat.raw_relation(LOAD_REJECTS_NAME)}
    return sorted(relations)


def table_lines(wh: Warehouse) -> list[str]:
    """`Tables:` and, per schema, each existing relation with its row count."""
    from orchestration.catalog import catalog

    lines = ["Tables:"]
    current_schema = None
    present = [r for r in summary_relations() if wh.exists(r)]
    for relation in present:
        schema, table = relation.split(".", 1)
        if schema != current_schema:
            lines.append(f"  {schema}:")
            current_schema = schema
        count = int(wh.scalar(f"select count(*) from {relation}") or 0)
        lines.append(f"    {table:<40} {count:>12,} rows")
    rejects = catalog().raw_relation("_load_rejects")
    if rejects in present:
        n = int(wh.scalar(f"select count(*) from {rejects}") or 0)
        lines.append(f"  {n:,} landing rows were rejected: select * from {rejects}")
    return lines


def input_lines(wh: Warehouse) -> list[str]:
    """`Inputs:` and, per landing source (built-in and declared), whether its raw table has rows
    (present, with the count) or not (absent: the marts it feeds stay empty, see
    docs/landing-contract.md, "Partial source sets")."""
    from orchestration.ingestion.contract import landing_sources
    from orchestration.ingestion.schema import raw_table

    lines = ["Inputs (rows in raw per landing source):"]
    absent = []
    for source in landing_sources():
        relation = raw_table(source)
        rows = int(wh.scalar(f"select count(*) from {relation}") or 0) if wh.exists(relation) else 0
        lines.append(f"  {source.name:<40} {'present' if rows else 'absent':<8} {rows:>12,} rows")
        if not rows:
            absent.append(source.name)
    if absent:
        lines.append(f"  absent: {', '.join(absent)} (their marts stay empty; "
                     "docs/landing-contract.md, \"Partial source sets\")")
    return [*lines, ""]


def summarise(warehouse: Path | None = None, target: str | None = None) -> str:
    """A short text report of the dbt target (CDP_DBT_TARGET unless `target`): latest KPIs,
    segment sizes, what each sync sent, every table's rows. On DuckDB it reads the file
    `warehouse` (default CDP_WAREHOUSE) read-only; on postgres/spark no DuckDB file is opened."""
    from orchestration.overview import overview
    from orchestration.warehouse import open_warehouse

    settings = load_settings()
    target = target or settings.dbt_target
    if target == "duckdb":
        warehouse = warehouse or settings.warehouse
        if not warehouse.exists():
            return f"no warehouse at {warehouse} yet: run `make run`"
        where = f"Warehouse {warehouse}"
        look = [f"  duckdb -readonly {warehouse}      (or: .venv/bin/python -m duckdb ...)"]
    else:
        where = f"Warehouse: dbt target {target}"
        look = [f"  the {target} target with its own client (docs/bi.md)"]
    wh = open_warehouse(target, warehouse, read_only=True)
    try:
        lines = [where, "", *overview(wh), *input_lines(wh), *table_lines(wh)]
    finally:
        wh.close()
    report = report_dir() / "index.html"
    lines += ["", "Look at it:", *look,
              "  make ui                            Dagster UI at http://127.0.0.1:3000",
              f"  {report}   the run report (charts)" if report.exists()
              else f"  {report}   the run report: not built yet (every run builds it)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the whole pipeline on CDP_LANDING_DIR; exit 0 ok "
                              "(warnings allowed), 1 a step or error check failed, 2 usage/config")
    run.add_argument("--verbose", action="store_true",
                     help="also print every Dagster message (DEBUG) and library output")
    commands.add_parser("prepare", help="compile segments/*.yml and parse the dbt project "
                        "(what `make parse` and every `cdp run` do first)")
    commands.add_parser("load", help="only load CDP_LANDING_DIR into raw on CDP_DBT_TARGET "
                        "(and the phone lookup): every dbt source then exists, `dbt build` runs "
                        "on its own; exit 0 ok, 1 a source failed, 2 usage/config")
    commands.add_parser("summary", help="print what the warehouse holds")
    generate = commands.add_parser("generate", help="write sample landing data")
    generate.add_argument("--customers", type=int, default=2000)
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument("--out", type=Path, default=None)
    generate.add_argument("--end-date", type=dt.date.fromisoformat, default=None,
                          help="last day of the simulated window (YYYY-MM-DD; default: the "
                               "generator's)")
    spark = commands.add_parser("spark-server", help="the local Spark Thrift server of the spark "
                                "target (CDP_SPARK_*)")
    spark.add_argument("action", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)

    if args.command == "spark-server":
        from orchestration.warehouse.spark_server import main as spark_server

        return spark_server([args.action])
    if args.command == "run":
        return run_pipeline(verbose=args.verbose)
    if args.command == "prepare":
        return prepare()
    if args.command == "load":
        return load()
    if args.command == "summary":
        print(summarise())
        return 0
    if args.command == "generate":
        from tools.sample_data import generate as generate_data

        out = args.out or load_settings().landing_dir
        window = {"end_date": args.end_date} if args.end_date else {}
        counts = generate_data(customers=args.customers, seed=args.seed, out=out, **window)
        print(f"wrote sample data for {args.customers:,} customers to {out}: "
              + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
