"""Profile API latency and throughput at N customers, from a local load generator.

Building 1M customers through the whole pipeline does not fit a benchmark session on a small
machine, and the API's cost does not depend on how rows were made: it depends on the snapshot's
size, indexes and document sizes. So this benchmark scales a real serving snapshot (built by the
pipeline from sample data) up to N customers: profile i carries the documents of template
profile i mod T, under its own customer_id and identifiers (email, user_id, anonymous_id,
phone), so documents have real shapes and sizes and every lookup goes through the same two
indexed reads as in production.

    .venv/bin/python bench/api_latency.py --template /tmp/s8/serving.duckdb \
        --customers 1000000 --workers 1 --concurrency 8 --seconds 20

Prints p50, p90, p99 latency and requests per second, per API key kind (with and without PII).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET_PII = "bench-support"
SECRET_PUBLIC = "bench-website"


def build_scaled_snapshot(template: Path, customers: int, out: Path) -> float:
    """Write a snapshot of `customers` profiles into `out`, from the documents of `template`."""
    started = time.perf_counter()
    out.unlink(missing_ok=True)
    con = duckdb.connect(str(out))
    con.execute("attach ? as t (read_only)", [str(template.resolve())])
    templates = con.execute("select count(*) from t.profiles").fetchone()[0]
    con.execute("""
        create table template as
        select row_number() over (order by customer_id) - 1 as k, * exclude (customer_id)
        from t.profiles""")
    con.execute(f"""
        create table profiles as
        select 'cus_' || lpad(cast(i as varchar), 8, '0') as customer_id,
               p.* exclude (k)
        from range({customers}) as r(i)
        inner join template as p on p.k = i % {templates}""")
    con.execute(f"""
        create table identity_lookup as
        select identifier_type || ':' || value as identity_id, customer_id, identifier_type
        from (
            select 'cus_' || lpad(cast(i as varchar), 8, '0') as customer_id,
                   unnest(['email', 'user_id', 'anonymous_id', 'phone']) as identifier_type,
                   unnest(['person' || i || '@example.com', 'u-' || i, 'anon-' || i,
                           '+4477' || lpad(cast(i as varchar), 8, '0')]) as value
            from range({customers}) as r(i)
        )""")
    con.execute("create table erased_identities as select 'email:erased@example.com' as identity_id")
    con.execute("create table erased_customers (customer_id varchar)")
    con.execute("create table customer_id_aliases (old_customer_id varchar, customer_id varchar)")
    con.execute("create table _snapshot as select now()::timestamp as published_at, "
                "'{}' as counts_json")
    con.execute("create unique index profiles_customer_id on profiles (customer_id)")
    con.execute("create unique index identity_lookup_identity_id on identity_lookup (identity_id)")
    con.execute("detach t")
    con.execute("checkpoint")
    con.close()
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(snapshot: Path, workers: int, keys_file: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "CDP_SERVING_SNAPSHOT": str(snapshot), "CDP_API_KEYS_FILE": str(keys_file),
           "CDP_BENCH_PII": SECRET_PII, "CDP_BENCH_PUBLIC": SECRET_PUBLIC}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.serving", "--port", str(port),
         "--workers", str(workers)],
        cwd=ROOT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError("profile API did not start")


def load(base: str, customers: int, concurrency: int, seconds: float, secret: str,
         seed: int = 7) -> dict[str, float]:
    """`concurrency` threads, each with a keep-alive connection, issuing lookups back to back."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(n: int) -> None:
        nonlocal errors
        rng = random.Random(seed + n)
        local: list[float] = []
        local_errors = 0
        with httpx.Client(base_url=base, headers={"X-API-Key": secret}, timeout=10) as client:
            while time.perf_counter() < stop_at:
                i = rng.randrange(customers)
                kind = rng.choice(("email", "user_id", "anonymous_id", "phone"))
                value = {"email": f"person{i}@example.com", "user_id": f"u-{i}",
                         "anonymous_id": f"anon-{i}", "phone": f"+4477{i:08d}"}[kind]
                t0 = time.perf_counter()
                response = client.get(f"/v1/profiles/{kind}/{value}")
                elapsed = time.perf_counter() - t0
                if response.status_code == 200:
                    local.append(elapsed)
                else:
                    local_errors += 1
        with lock:
            latencies.extend(local)
            errors += local_errors

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(q[49] * 1000, 2),
        "p90_ms": round(q[89] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, required=True,
                        help="a serving snapshot built by the pipeline (CDP_SERVING_SNAPSHOT)")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cdp_api_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    snapshot = workdir / f"serving_{args.customers}.duckdb"
    if not snapshot.exists():
        build_seconds = build_scaled_snapshot(args.template, args.customers, snapshot)
        print(f"built {snapshot} ({snapshot.stat().st_size / 1e6:.0f} MB) in {build_seconds:.0f}s")
    keys_file = workdir / "keys.yml"
    keys_file.write_text(
        "keys:\n"
        "  - {name: bench-support, key_env: CDP_BENCH_PII, scopes: [profiles:read, pii:read]}\n"
        "  - {name: bench-website, key_env: CDP_BENCH_PUBLIC, scopes: [profiles:read]}\n")
    process, base = start_server(snapshot, args.workers, keys_file)
    try:
        load(base, args.customers, args.concurrency, 3, SECRET_PUBLIC)  # warm up
        results = {
            "customers": args.customers, "workers": args.workers,
            "concurrency": args.concurrency, "seconds": args.seconds, "cores": os.cpu_count(),
            "without_pii": load(base, args.customers, args.concurrency, args.seconds, SECRET_PUBLIC),
            "with_pii": load(base, args.customers, args.concurrency, args.seconds, SECRET_PII),
        }
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
