"""`python -m orchestration.inputs check|compile`: validate inputs/*.yml, (re)generate its dbt."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from orchestration.inputs.compiler import compile_inputs, out_of_date
from orchestration.inputs.model import InputError
from orchestration.settings import PROJECT_DIR


def _shown(path: object) -> str:
    text = str(path)
    return text.removeprefix(str(PROJECT_DIR) + "/")


def main(argv: Sequence[str] | None = None) -> int:
    """check: exit 1 on an invalid declaration or stale generated files; compile: write them."""
    parser = argparse.ArgumentParser(prog="python -m orchestration.inputs")
    parser.add_argument("command", choices=["check", "compile"])
    args = parser.parse_args(argv)
    try:
        outputs = compile_inputs(write=args.command == "compile")
    except InputError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.command == "check":
        stale = out_of_date(outputs)
        if stale:
            print("out of date, run `python -m orchestration.inputs compile`: "
                  + ", ".join(_shown(p) for p in stale), file=sys.stderr)
            return 1
    inputs = sum(1 for p in outputs if p.suffix == ".sql") - 1
    print(f"{inputs} inputs OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
