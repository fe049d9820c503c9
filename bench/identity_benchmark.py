"""Benchmark identity resolution against scipy's in-memory connected components.

Runs the identity models (dbt, DuckDB) on a warehouse whose staging is already built, then, on
the same edge list (identity_edges, string identifiers), times
scipy.sparse.csgraph.connected_components including the building of integer node ids.

    .venv/bin/python -m bench.identity_benchmark --warehouse /tmp/w.duckdb [--project-dir DIR]
        [--truth LANDING/_ground_truth]

Prints JSON: wall time of the identity models (total and the graph part), rounds to convergence,
peak memory of the dbt process, scipy timings and component counts, and quality when --truth is
given. Record figures in docs/benchmarks.md (## Identity resolution) with the command and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parents[1]
SELECT = ["path:models/intermediate/identity", "path:models/intermediate/profiles",
          "path:models/marts/identity", "path:models/marts/customers",
          # suppressed identifiers feed the graph; consent columns feed customers
          "path:models/intermediate/privacy", "path:models/marts/privacy", "consent_purposes"]
GRAPH_MODELS = {"int_identity_identifiers_observed", "int_identity_edges_observed",
                "int_identity_nodes", "int_identity_edges_ruled",
                "int_identity_strong_components", "int_identity_exclusions",
                "int_identity_components", "int_identity_customer_ids_assigned"}


def run_dbt(warehouse: Path, project_dir: Path) -> dict[str, Any]:
    """Run the identity models once from scratch (--full-refresh: the connected components and
    the timeline are recomputed, not re-stitched); wall time, per-model times, child's peak RSS."""
    env = {**os.environ, "CDP_WAREHOUSE": str(warehouse), "CDP_DBT_TARGET": "duckdb"}
    started = time.perf_counter()
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "dbt"), "run", "--full-refresh", "--profiles-dir",
         "profiles", "--select", *SELECT],
        cwd=project_dir, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(result.stdout[-5000:])
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    run_results = json.loads((project_dir / "target" / "run_results.json").read_text())
    timings = {r["unique_id"].split(".")[-1]: round(r["execution_time"], 2)
               for r in run_results["results"]}
    return {
        "dbt_wall_seconds": round(wall, 1),
        "models_seconds": round(sum(timings.values()), 1),
        "graph_models_seconds": round(sum(t for m, t in timings.items() if m in GRAPH_MODELS), 1),
        "model_seconds": timings,
        "dbt_peak_rss_mib": round(peak_mib),
    }


def scipy_components(edges: pa.Table) -> dict[str, Any]:
    """Connected components of the string edge list, ids built by hashing (timed)."""
    started = time.perf_counter()
    both = pa.chunked_array(edges.column("key_a").chunks + edges.column("key_b").chunks)
    encoded = both.combine_chunks().dictionary_encode()
    inverse = encoded.indices.to_numpy()
    ids_done = time.perf_counter()
    n = len(encoded.dictionary)
    half = edges.num_rows
    rows, cols = inverse[:half], inverse[half:]
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n)).tocsr()
    count, _labels = connected_components(graph, directed=False)
    done = time.perf_counter()
    return {
        "scipy_seconds": round(done - started, 2),
        "scipy_node_id_seconds": round(ids_done - started, 2),
        "scipy_components_seconds": round(done - ids_done, 2),
        "scipy_nodes": int(n),
        "scipy_components": int(count),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--project-dir", type=Path, default=ROOT)
    parser.add_argument("--truth", type=Path, help="the generator's _ground_truth folder")
    args = parser.parse_args()

    report: dict[str, Any] = {"cores": os.cpu_count()}
    report.update(run_dbt(args.warehouse.resolve(), args.project_dir.resolve()))

    con = duckdb.connect(str(args.warehouse), read_only=True)
    sizes = con.execute("""
        select
            (select count(*) from main_intermediate.int_identity_nodes),
            (select count(*) from main_intermediate.int_identity_edges_ruled),
            (select count(*) from main_intermediate.int_identity_edges_ruled
             where drop_reason is null),
            (select max(rounds) from main_intermediate.int_identity_strong_components),
            (select max(rounds) from main_intermediate.int_identity_components),
            (select count(*) from main_marts.customers)
    """).fetchall()[0]
    report.update(dict(zip(["nodes", "edges", "kept_edges", "strong_rounds", "profile_rounds",
                            "customers"], sizes, strict=True)))
    edges = con.sql("""
        select
            identifier_type_a || ':' || identifier_value_a as key_a,
            identifier_type_b || ':' || identifier_value_b as key_b
        from main_marts.identity_edges
    """).to_arrow_table()
    report.update(scipy_components(edges))
    report["ratio_graph_models_to_scipy"] = round(
        report["graph_models_seconds"] / report["scipy_seconds"], 1)
    if args.truth:
        from bench.identity_quality import score
        report["quality"] = score(con, args.truth / "truth.parquet").__dict__
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
