"""Time one batch of privacy requests on the warehouse a whole pipeline run left, per phase.

`bench/privacy_requests.py` builds its own warehouses with dbt; at 400,000 customers that is most
of an hour. This one takes a finished `cdp run` warehouse (for example the one
`bench/pipeline_profile.py` leaves in its workdir), copies it, adds `--requests` new requests
for people it holds (identifiers drawn from `customer_identities`: emails, phones and user ids in
the proportions of the generator's requests, about 45 % access and the rest erasures, chosen by a
hash so that every run picks the same ones) and times `execute_privacy_requests` on the copy
under cProfile, in this process. The requests bypass the loader, so phones missing from its
lookup (`raw._phone_numbers`, which the loader fills) fail validation:

    .venv/bin/python -m bench.privacy_on_a_run --warehouse /tmp/cdp_profile/c400000/warehouse.duckdb \
        --workdir /tmp/privacy_on_a_run [--requests 963]

Prints the total and the cumulative seconds of each phase; record figures in docs/benchmarks.md
("Privacy requests"). The warehouse compaction that follows an erasure in the asset is not part
of it (see docs/security.md for its cost).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import time
from pathlib import Path

import duckdb

# (label, module path suffix, function): the phases of execute_privacy_requests
PHASES = [
    ("late data of erased people (purge_suppressed)", "privacy/suppression.py", "purge_suppressed"),
    ("access exports (collect_exports)", "privacy/export.py", "collect_exports"),
    ("export files written (write_export)", "privacy/export.py", "write_export"),
    ("erasure: raw tables (erase_raw)", "privacy/steps.py", "erase_raw"),
    ("erasure: derived tables (scrub_derived)", "privacy/steps.py", "scrub_derived"),
    ("destination removals confirmed (refresh_destination_removals)",
     "privacy/destinations.py", "refresh_destination_removals"),
    ("sync state of erased people (forget_erased_payloads)", "activation/state.py",
     "forget_erased_payloads"),
]
SHARES = {"email": 0.81, "phone": 0.13, "user_id": 0.06}  # the generator's request mix


def add_requests(path: Path, count: int) -> dict[str, int]:
    """Insert `count` new requests (ids `bench-NNNNNN`) for identifiers of the warehouse."""
    con = duckdb.connect(str(path))
    try:
        limits = {kind: max(1, round(count * share)) for kind, share in SHARES.items()}
        con.execute(f"""
            create temp table picks as
            select identifier_type, identifier_value from (
                select identifier_type, identifier_value, row_number() over (
                    partition by identifier_type order by hash(identifier_value || 'x')) as n
                from main_marts.customer_identities
                where identifier_type in ('email', 'phone', 'user_id'))
            where n <= case identifier_type when 'email' then {limits['email']}
                when 'phone' then {limits['phone']} else {limits['user_id']} end""")
        con.execute("""
            insert into raw.privacy_requests (request_id, identifier_type, identifier_value,
                request_type, received_at, _source_file, _source_line, _loaded_at)
            select 'bench-' || lpad(cast(row_number() over (order by identifier_value)
                                         as varchar), 6, '0'),
                identifier_type, identifier_value,
                case when hash(identifier_value) % 100 < 45 then 'access' else 'erasure' end,
                timestamptz '2026-10-01 00:00:00+00', 'bench_requests.csv',
                row_number() over (), now()
            from picks""")
        return dict(con.execute("select request_type, count(*) from raw.privacy_requests "
                                "where request_id like 'bench-%' group by all").fetchall())
    finally:
        con.close()


def phase_seconds(stats: pstats.Stats) -> dict[str, float]:
    found = {label: 0.0 for label, _, _ in PHASES}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for label, suffix, name in PHASES:
            if function == name and filename.endswith(suffix):
                found[label] += cumulative
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/privacy_on_a_run"))
    parser.add_argument("--requests", type=int, default=963)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    copy = args.workdir / "warehouse.duckdb"
    shutil.copyfile(args.warehouse, copy)
    exports = args.workdir / "exports"
    shutil.rmtree(exports, ignore_errors=True)
    kinds = add_requests(copy, args.requests)
    os.environ["CDP_WAREHOUSE"] = str(copy)
    os.environ["CDP_PRIVACY_EXPORT_DIR"] = str(exports)
    from orchestration.privacy.runs import execute_privacy_requests
    from orchestration.warehouse import open_warehouse

    wh = open_warehouse("duckdb", copy)
    profile = cProfile.Profile()
    started = time.perf_counter()
    try:
        profile.enable()
        report = execute_privacy_requests(wh)
        profile.disable()
    finally:
        wh.close()
    total = time.perf_counter() - started
    print(f"requests added: {kinds}; outcomes: {report.counts()}")
    print("| phase | seconds |\n| --- | ---: |")
    for label, seconds in phase_seconds(pstats.Stats(profile)).items():
        print(f"| {label} | {seconds:.1f} |")
    print(f"| **total** (execute_privacy_requests, under cProfile) | **{total:.1f}** |")


if __name__ == "__main__":
    main()
