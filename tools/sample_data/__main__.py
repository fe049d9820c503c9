"""`python -m tools.sample_data`: write a sample landing folder from the command line."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from tools.sample_data.generator import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.sample_data",
                                     description=__doc__)
    parser.add_argument("--customers", type=int, required=True, help="people to simulate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True, help="landing folder to write")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--end-date", type=date.fromisoformat, default=date(2026, 10, 31),
                        help="last day of the simulated window (YYYY-MM-DD)")
    parser.add_argument("--months", type=int, default=24, help="length of the window")
    parser.add_argument("--bad-row-rate", type=float, default=0.0005,
                        help="share of rows with an unparseable typed value")
    args = parser.parse_args(argv)
    counts = generate(args.customers, args.seed, args.out, args.format, args.end_date,
                      args.months, args.bad_row_rate)
    width = max(len(k) for k in counts)
    for source, rows in counts.items():
        print(f"{source:<{width}} {rows:>12,}")
    print(f"{'total':<{width}} {sum(counts.values()):>12,}  -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
