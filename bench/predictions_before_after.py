"""Benchmark: the predictions asset's work before/after issue 17 on DuckDB, with the same inputs.

Usage: python bench/predictions_before_after.py <customers> <old-tree>
where <old-tree> holds the old `orchestration/` (`git archive 9998738 orchestration | tar -x -C
<old-tree>`) next to symlinks to this checkout's other top-level entries (dbt project, profiles).
Prints both timings, per step, and the largest difference per prediction column.
"""
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.purchase_histories import simulate_transactions  # noqa: E402

n, old_root = int(sys.argv[1]), sys.argv[2]
tx = simulate_transactions(n, seed=3)
tmp = Path(tempfile.mkdtemp(prefix="pred17cmp_"))


def run(root: str):
    """Load the purchases into a fresh DuckDB file and time build + write with the tree at root."""
    for m in [m for m in sys.modules if m.startswith("orchestration")]:
        del sys.modules[m]
    sys.path.insert(0, root)
    import orchestration.predictions as P
    sys.path.remove(root)
    assert P.__file__.startswith(root), P.__file__
    path = tmp / f"{Path(root).name}.duckdb"
    with duckdb.connect(str(path)) as con:
        rel = P.transactions_relation()
        con.execute(f"create schema if not exists {rel.split('.')[0]}")
        con.register("tx", tx)
        con.execute(f"create or replace table {rel} as select * from tx")
    as_of_at = P.as_of_bound(dt.date(2024, 12, 31))
    cfg = P.PredictionsConfig()
    if "wh" in P.build_predictions.__code__.co_varnames:
        from orchestration.warehouse.duckdb_engine import DuckDBWarehouse
        session = DuckDBWarehouse(path)
    else:
        session = duckdb.connect(str(path))
        session.execute("set TimeZone='UTC'")
    start = time.perf_counter()
    out = P.build_predictions(session, as_of_at, cfg)
    P.write_tables(session, *out[:3])
    seconds = time.perf_counter() - start
    session.close()
    return out, seconds


old, t_old = run(old_root)
new, t_new = run(str(ROOT))
print(f"customers={n} rows={len(tx)} old={t_old:.2f}s new={t_new:.2f}s")
print("old timings", {k: round(v, 3) for k, v in old[4].items()})
print("new timings", {k: round(v, 3) for k, v in new[4].items()})
a, b = old[0].set_index("customer_id"), new[0].set_index("customer_id")
assert list(a.index) == list(b.index)
num = [c for c in a.columns if a[c].dtype.kind == "f"]
print("max abs diff per column:", {c: float((a[c] - b[c]).abs().max()) for c in num})
print("fits diff", float((old[1]["value"] - new[1]["value"]).abs().max()))
