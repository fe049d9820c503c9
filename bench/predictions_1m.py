"""Benchmark: LTV (BG/NBD + Gamma-Gamma) and churn predictions for N customers (default 1M).

    .venv/bin/python bench/predictions_1m.py --customers 1000000

Simulates purchase histories (tools/purchase_histories.py), loads them into an in-memory DuckDB as
`int_transactions_attributed` would be, and times every step of the predictions asset
(orchestration/predictions.py build_predictions): rfm summary, fits, predictions, churn model
(features at two cut-offs + scoring), and prints the figures as Markdown for docs/benchmarks.md.
"""

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestration.predictions import (  # noqa: E402
    PredictionsConfig, as_of_bound, build_predictions, transactions_relation)
from orchestration.warehouse.duckdb_engine import DuckDBWarehouse  # noqa: E402
from tools.purchase_histories import simulate_transactions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    transactions = simulate_transactions(args.customers, seed=args.seed)
    simulate_seconds = time.perf_counter() - start
    wh = DuckDBWarehouse(Path(":memory:"))
    con = wh.con
    con.execute("set threads = 2")
    relation = transactions_relation()
    con.execute(f"create schema {relation.split('.')[0]}")
    con.register("tx", transactions)
    con.execute(f"create table {relation} as select * from tx")
    con.unregister("tx")
    del transactions

    start = time.perf_counter()
    predictions, fits, _, evaluation, timings = build_predictions(
        wh, as_of_bound(dt.date(2024, 12, 31)), PredictionsConfig())
    total = time.perf_counter() - start
    n_tx = con.execute(f"select count(*) from {relation}").fetchone()[0]

    print(f"customers {args.customers:,}, transactions {n_tx:,}, predictions {len(predictions):,}; "
          f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"simulate {simulate_seconds:.1f}s (not part of the asset)")
    for step, seconds in timings.items():
        print(f"{step:>16}: {seconds:7.2f}s")
    print(f"{'total asset work':>16}: {total:7.2f}s (read + fits + predict + churn)")
    print(f"churn out-of-time: AUC {evaluation.auc:.3f}, top-decile lift {evaluation.top_decile_lift:.2f}, "
          f"Brier {evaluation.brier:.3f}, n_train {evaluation.n_train:,}, n_test {evaluation.n_test:,}, "
          f"test churn rate {evaluation.test_churn_rate:.3f}")
    print(fits[["model", "parameter", "value", "log_likelihood", "n_customers"]].to_string(index=False))


if __name__ == "__main__":
    main()
