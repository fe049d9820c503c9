"""Destinations: syncs still holding an erased or suppressed person, and their confirmation."""

from __future__ import annotations

import json

import duckdb

from orchestration.activation.state import STATE as SYNC_STATE
from orchestration.privacy.audit import (
    LOG, REQUESTS, TargetResult, identifier_hash, now, relation_exists, salt,
)
from orchestration.privacy.matching import load_values


def destination_removals(con: duckdb.DuckDBPyConnection,
                         customers: str) -> dict[str, list[TargetResult]]:
    """Per request of `customers` (request_id, customer_id), the syncs whose state still holds
    one of its keys: the next sync sends the removal. One query over the sync state."""
    if not relation_exists(con, SYNC_STATE):
        return {}
    keys = dict(con.execute(f"select request_id, list(customer_id) from {customers} "
                            "group by 1").fetchall())
    results: dict[str, list[TargetResult]] = {}
    for request_id, sync_name, count in con.execute(
            f"select c.request_id, s.sync_name, count(*) from {SYNC_STATE} as s "
            f"inner join {customers} as c on c.customer_id = s.row_key "
            "group by 1, 2 order by 1, 2").fetchall():
        hashes = json.dumps(sorted(identifier_hash(c) for c in set(keys[request_id])))
        results.setdefault(request_id, []).append(TargetResult(
            f"activation:{sync_name}", "destination_removal", count, "running", hashes))
    return results


def pending_destination_removals(con: duckdb.DuckDBPyConnection,
                                 customer_ids: set[str]) -> list[TargetResult]:
    """`destination_removals` of one set of customers."""
    customers = load_values(con, "_privacy_removal_customers", "", customer_ids)
    con.execute(f"alter table {customers} rename value to customer_id")
    return destination_removals(con, customers).get("", [])


def refresh_destination_removals(con: duckdb.DuckDBPyConnection) -> int:
    """Mark pending destination removals finished once the sync state no longer holds the keys."""
    if not relation_exists(con, SYNC_STATE):
        return 0
    pending = con.execute(
        f"select request_id, target, detail from {LOG} "
        "where action = 'destination_removal' and status = 'running'").fetchall()
    finished = 0
    for request_id, target, detail in pending:
        sync_name = target.split(":", 1)[1]
        hashes = json.loads(detail or "[]")
        left = con.execute(
            f"select count(*) from {SYNC_STATE} where sync_name = ? "
            "and list_contains(?, sha256(? || row_key))", [sync_name, hashes, salt()]).fetchone()[0]
        if left == 0:
            con.execute(f"update {LOG} set status = 'finished', completed_at = ? "
                        "where request_id = ? and target = ? and status = 'running'",
                        [now(), request_id, target])
            finished += 1
    for (request_id,) in con.execute(
            f"select request_id from {REQUESTS} where status = 'partial'").fetchall():
        open_targets = con.execute(f"select count(*) from {LOG} where request_id = ? and "
                                   "status in ('running', 'failed')", [request_id]).fetchone()[0]
        if open_targets == 0:
            con.execute(f"update {REQUESTS} set status = 'finished' where request_id = ?",
                        [request_id])
    return finished
