"""Writing the generated segment models, the run's compile step and the `check|compile` CLI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from orchestration.segments.sql import (COMPILED_MODEL, DEFINITIONS_MODEL, render_definitions_model,
                                        render_members_model)
from orchestration.segments.validation import SegmentError, column_catalogue, load_segments
from orchestration.settings import PROJECT_DIR


def compile_segments(write: bool = True) -> dict[Path, str]:
    """Validate segments/*.yml and render the generated models; write them when `write`."""
    columns = column_catalogue()
    segments = load_segments(columns=columns)
    outputs = {
        COMPILED_MODEL: render_members_model(segments, columns),
        DEFINITIONS_MODEL: render_definitions_model(segments, columns),
    }
    if write:
        for path, text in outputs.items():
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
    return outputs


def compile_for_run() -> str | None:
    """Compile the segment YAML before dbt builds, so a run never uses a stale model. An invalid
    declaration writes nothing (the last good compiled models stay in place) and is returned
    as the error naming file, segment and field; None when the models are current."""
    try:
        compile_segments(write=True)
    except SegmentError as exc:
        return str(exc)
    return None


def declaration_problem() -> str | None:
    """What is wrong with the segment YAML or the compiled models right now (nothing written):
    an invalid declaration, or compiled models out of date with the YAML; None when all is well."""
    try:
        outputs = compile_segments(write=False)
    except SegmentError as exc:
        return str(exc)
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
    if stale:
        return ("compiled segment models out of date with the YAML (the next run compiles them): "
                + ", ".join(p.name for p in stale))
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.segments")
    parser.add_argument("command", choices=["check", "compile"])
    args = parser.parse_args(argv)
    try:
        outputs = compile_segments(write=args.command == "compile")
    except SegmentError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.command == "check":
        stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        if stale:
            print("out of date, run `python -m orchestration.segments compile`: "
                  + ", ".join(str(p.relative_to(PROJECT_DIR)) for p in stale), file=sys.stderr)
            return 1
    print(f"{len(load_segments())} segments OK")
    return 0
