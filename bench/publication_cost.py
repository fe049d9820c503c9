"""Benchmark the BI publication and the serving snapshot on a built warehouse (issue 19).

On a copy of a DuckDB warehouse left by a whole run (e.g. bench/pipeline_growth.py), it times:

* per published table: deriving it into a scratch file (the hashed select, as publish() does)
  and, where orchestration/fingerprints.py exists, fingerprinting its source;
* publish() and build_snapshot() into empty folders (a first run), again with nothing changed,
  after one row of `customer_predictions` changed, and after one row of `customers` changed.

    .venv/bin/python -m bench.publication_cost --warehouse /tmp/growth/c100000/warehouse.duckdb \\
        --workdir /tmp/publication_cost

Run it with PYTHONPATH pointing at another checkout to time that checkout's code (publish()
returned a plain dict of counts before issue 19; both are read). Prints JSON; record figures in
docs/benchmarks.md with the machine's load (`uptime`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import duckdb

from orchestration import publication
from orchestration.catalog import catalog
from orchestration.serving.snapshot import build_snapshot


def _timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return round(time.perf_counter() - started, 2), value


def per_table(con: duckdb.DuckDBPyConnection, tables: list, scratch: Path) -> list[dict]:
    try:
        from orchestration.fingerprints import relation_fingerprint
    except ImportError:  # a checkout before issue 19
        relation_fingerprint = None
    salt = publication.pii_salt()
    clear = frozenset(publication.clear_record_id_sources())
    con.execute(f"attach '{scratch}' as scratch")
    rows = []
    for table in tables:
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = ? "
            "and table_name = ? and table_catalog = current_database()",
            [table.schema, table.name]).fetchone()[0]
        if not exists:
            continue
        select = publication._select_list(con, table, salt, clear)
        derive, _ = _timed(lambda: con.execute(
            f'create table scratch."{table.name}" as select {select} '
            f'from "{table.schema}"."{table.name}"'))
        count = con.execute(f'select count(*) from scratch."{table.name}"').fetchone()[0]
        entry = {"table": table.name, "rows": count, "derive_s": derive}
        if relation_fingerprint is not None:
            entry["fingerprint_s"] = _timed(
                lambda: relation_fingerprint(con, table.schema, table.name))[0]
        rows.append(entry)
    con.execute("detach scratch")
    return sorted(rows, key=lambda r: -r["derive_s"])


def _reused(result: Any) -> list[str] | str:
    return list(getattr(result, "reused", ())) if hasattr(result, "reused") else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/publication_cost"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    warehouse = args.workdir / "warehouse.duckdb"
    shutil.copyfile(args.warehouse, warehouse)
    con = duckdb.connect(str(warehouse))
    tables = publication.published_tables(dict(catalog().manifest))
    bi, serving = args.workdir / "bi" / "cdp_bi.duckdb", args.workdir / "serving" / "cdp.duckdb"
    customers = catalog().relation("customers")
    predictions = catalog().source("predictions", "customer_predictions")
    out: dict[str, Any] = {"load_before": os.getloadavg(),
                           "per_table": per_table(con, tables, args.workdir / "scratch.duckdb")}
    changes = {
        "first": None,
        "unchanged": None,
        "one_prediction_changed": f"update {predictions} set churn_risk = churn_risk / 2 "
                                  "where customer_id = "
                                  f"(select min(customer_id) from {predictions})",
        "one_customer_changed": f"update {customers} set city = 'Bench City' where customer_id "
                                f"= (select min(customer_id) from {customers})",
    }
    for label, change in changes.items():
        if change:
            con.execute(change)
        seconds, result = _timed(lambda: publication.publish(con, tables, bi))
        out[f"publication_{label}_s"] = seconds
        out[f"publication_{label}_reused"] = _reused(result)
        seconds, report = _timed(lambda: build_snapshot(con, serving))
        out[f"snapshot_{label}_s"] = seconds
        out[f"snapshot_{label}_kept"] = getattr(report, "reused", "n/a")
    out["publication_mb"] = round(bi.stat().st_size / 2**20, 1)
    out["snapshot_mb"] = round(serving.resolve().stat().st_size / 2**20, 1)
    out["load_after"] = os.getloadavg()
    con.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
