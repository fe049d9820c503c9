"""Activation throughput at 1M rows: upserts to PostgreSQL and HTTP, and a no-change run."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb

from orchestration.activation.config import parse_config
from orchestration.activation.engine import run_sync


class Sink(BaseHTTPRequestHandler):
    """Parses each JSON batch and acknowledges every row, like a fast webhook receiver."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["rows"]
        data = b'{"errors": []}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(port_queue: "multiprocessing.Queue[int]") -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def make_source(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    con.execute("create schema if not exists main_marts")
    con.execute("""
        create or replace table main_marts.customers as
        select 'c' || lpad(cast(i as varchar), 8, '0') as customer_id,
            'user' || i || '@example.com' as email, '+447' || cast(100000000 + i as varchar) as phone,
            'First' || (i % 5000) as first_name, 'Last' || (i % 9000) as last_name,
            'City' || (i % 300) as city, 'GB' as country,
            cast(i % 100000 as decimal(12, 2)) / 7 as lifetime_value
        from range(?) as t(i)""", [rows])


def sync_config(name: str, destination: dict, batch_size: int):
    return parse_config({"syncs": [{
        "name": name, "source": "main_marts.customers", "primary_key": "customer_id",
        "mode": "upsert", "batch_size": batch_size,
        "fields": {c: c for c in ("customer_id", "email", "phone", "first_name", "last_name",
                                  "city", "country", "lifetime_value")},
        "destination": destination}]}, "bench")


def measure(con: duckdb.DuckDBPyConnection, cfg, name: str, rows: int) -> dict[str, float]:
    started = time.perf_counter()
    first = run_sync(con, cfg, name)
    full = time.perf_counter() - started
    assert first.ok and first.counts.acknowledged == rows, first.summary()
    started = time.perf_counter()
    second = run_sync(con, cfg, name)
    unchanged = time.perf_counter() - started
    assert second.counts.sent == 0, second.summary()
    con.execute("update main_marts.customers set city = 'Moved' where customer_id like '%7'")
    started = time.perf_counter()
    third = run_sync(con, cfg, name)
    changed = time.perf_counter() - started
    return {"full_seconds": round(full, 1), "rows_per_second": round(rows / full),
            "no_change_seconds": round(unchanged, 2),
            "changed_rows": third.counts.changed, "ten_percent_change_seconds": round(changed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["postgres", "http"], default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="activation-bench-"))
    con = duckdb.connect(str(work / "warehouse.duckdb"))
    make_source(con, args.rows)
    results: dict[str, object] = {"rows": args.rows, "cores": os.cpu_count()}

    if args.only in (None, "postgres"):
        import pgserver

        server = pgserver.get_server(work / "pg", cleanup_mode="stop")
        cfg = sync_config("bench_pg", {"type": "postgres", "dsn": server.get_uri(),
                                       "schema": "crm", "table": "contacts"}, 10_000)
        results["postgres"] = measure(con, cfg, "bench_pg", args.rows)
        server.cleanup()
        make_source(con, args.rows)

    if args.only in (None, "http"):
        ports: multiprocessing.Queue[int] = multiprocessing.Queue()
        process = multiprocessing.Process(target=serve, args=(ports,), daemon=True)
        process.start()
        url = f"http://127.0.0.1:{ports.get(timeout=10)}/hook"
        cfg = sync_config("bench_http", {"type": "http", "url": url}, 1_000)
        results["http"] = measure(con, cfg, "bench_http", args.rows)
        process.terminate()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
