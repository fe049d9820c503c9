"""The `cdp` command line: run the pipeline, summarise the warehouse, generate sample data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

from orchestration.settings import default_salt_warning, load_settings

JOB_NAME = "cdp_full_pipeline"


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return "(no message)"


def run_pipeline() -> int:
    """Execute the full-pipeline job in-process on the configured Dagster instance."""
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.recovery import guard_run

    settings = load_settings()
    settings.export_env()
    if not settings.landing_dir.is_dir():
        print(f"error: landing folder {settings.landing_dir} does not exist (set CDP_LANDING_DIR)",
              file=sys.stderr)
        return 2
    if salt_warning := default_salt_warning(settings.landing_dir):
        print(salt_warning, file=sys.stderr)
    instance = dg.DagsterInstance.get() if _has_dagster_home() else dg.DagsterInstance.ephemeral()
    guard_run(instance)  # fail runs whose process is gone, free their slots; bound SIGTERM
    job = defs.resolve_job_def(JOB_NAME)
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    if result.success:
        print(f"pipeline succeeded (run {result.run_id})")
        return 0
    print(f"pipeline FAILED (run {result.run_id})", file=sys.stderr)
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            cause = error.cause if error and error.cause else error
            print(f"  step {event.step_key}: {first_line(error.message if error else None)}",
                  file=sys.stderr)
            if cause is not error and cause is not None:
                print(f"    cause: {first_line(cause.message)}", file=sys.stderr)
    return 1


def _has_dagster_home() -> bool:
    import os

    home = os.environ.get("DAGSTER_HOME")
    return bool(home) and Path(home).is_dir()


def summarise(warehouse: Path) -> str:
    """A short text report of what the warehouse holds and how to look at it."""
    if not warehouse.exists():
        return f"no warehouse at {warehouse} yet: run `make run`"
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('information_schema', 'pg_catalog') "
            "order by table_schema, table_name"
        ).fetchall()
        lines = [f"Warehouse {warehouse}"]
        current_schema = None
        for schema, table in tables:
            if schema != current_schema:
                lines.append(f"  {schema}:")
                current_schema = schema
            count = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            lines.append(f"    {table:<40} {count:>12,} rows")
        rejects = [t for s, t in tables if s == "raw" and t == "_load_rejects"]
        if rejects:
            n = con.execute("select count(*) from raw._load_rejects").fetchone()[0]
            lines.append(f"  {n:,} landing rows were rejected: select * from raw._load_rejects")
    finally:
        con.close()
    lines += [
        "",
        "Look at it:",
        f"  duckdb -readonly {warehouse}      (or: .venv/bin/python -m duckdb ...)",
        "  make ui                            Dagster UI at http://127.0.0.1:3000",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the whole pipeline on CDP_LANDING_DIR; non-zero on failure")
    commands.add_parser("summary", help="print what the warehouse holds")
    generate = commands.add_parser("generate", help="write sample landing data")
    generate.add_argument("--customers", type=int, default=2000)
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "run":
        return run_pipeline()
    if args.command == "summary":
        print(summarise(load_settings().warehouse))
        return 0
    if args.command == "generate":
        from orchestration.generate import generate as generate_data

        out = args.out or load_settings().landing_dir
        counts = generate_data(customers=args.customers, seed=args.seed, out=out)
        print(f"wrote sample data for {args.customers:,} customers to {out}: "
              + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
