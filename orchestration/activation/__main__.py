"""Command line: `python -m orchestration.activation {run,preview,reset} SYNC [--config F]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orchestration.activation import state
from orchestration.activation.config import ActivationConfig, ConfigError, SyncConfig, load_config
from orchestration.activation.engine import run_sync
from orchestration.settings import load_settings
from orchestration.warehouse import Warehouse, open_warehouse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.activation")
    parser.add_argument("command", choices=["run", "preview", "reset", "list"])
    parser.add_argument("sync", nargs="?", help="sync name (all active syncs when omitted)")
    parser.add_argument("--config", help="sync file (default activation/syncs.yml)")
    parser.add_argument("--warehouse", help="DuckDB file when the target is duckdb "
                                            "(default CDP_WAREHOUSE)")
    parser.add_argument("--rows", type=int, default=5, help="preview rows per operation")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    syncs = [config.sync(args.sync)] if args.sync else [s for s in config.syncs if s.is_active]
    if args.command == "list":
        for sync in config.syncs:
            print(f"{sync.name}\t{sync.mode}\t{sync.source_label} -> {sync.destination.type}"
                  f"{'' if sync.is_active else '  (inactive)'}")
        return 0
    # The target dbt builds (CDP_DBT_TARGET): state, run log and source are all read there.
    wh = open_warehouse(load_settings().dbt_target,
                        Path(args.warehouse) if args.warehouse else None)
    try:
        return 1 if run_command(wh, config, syncs, args) else 0
    finally:
        wh.close()


def run_command(wh: Warehouse, config: ActivationConfig, syncs: list[SyncConfig],
                args: argparse.Namespace) -> int:
    """Run, preview or reset each sync; the number that failed."""
    failed = 0
    for sync in syncs:
        if args.command == "reset":
            state.ensure_schema(wh)
            state.reset_sync(wh, sync.name)
            print(f"{sync.name}: state cleared; the next run sends every row")
            continue
        result = run_sync(wh, config, sync, dry_run=args.command == "preview",
                          preview_rows=args.rows, log=lambda m: print(m, flush=True))
        if args.command == "preview":
            counts = {"adds": result.counts.added, "updates": result.counts.changed,
                      "removes": result.counts.removed}
            print(json.dumps({"sync": sync.name, "counts": counts,
                              "invalid_keys": result.invalid_keys, "preview": result.preview},
                             indent=2, default=str))
        failed += not result.ok
    return failed


if __name__ == "__main__":
    sys.exit(main())
