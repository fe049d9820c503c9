"""Destinations: syncs still holding an erased or suppressed person, and their confirmation."""

from __future__ import annotations

import json
from collections.abc import Mapping

from orchestration.activation.state import STATE as SYNC_STATE
from orchestration.privacy.audit import (
    LOG, REQUESTS, TABLES, TargetResult, identifier_hash, now, rewrite_rows, salt, table_of,
)
from orchestration.privacy.sql import (
    Target, hash_sql, placeholders, text, value_set, warehouse_of,
)

Customers = Mapping[str, set[str]]  # request_id -> customer ids


def destination_removals(target: Target, customers: Customers) -> dict[str, list[TargetResult]]:
    """Per request of `customers`, the syncs whose state still holds one of its keys: the next
    sync sends the removal. One query over the sync state."""
    wh = warehouse_of(target)
    everyone = set().union(*customers.values()) if customers else set()
    if not everyone or not wh.exists(SYNC_STATE):
        return {}
    marks, params = placeholders(sorted(everyone), "c")
    held = wh.rows(f"select sync_name, row_key, count(*) from {SYNC_STATE} "
                   f"where row_key in ({marks}) group by sync_name, row_key", params)
    results: dict[str, list[TargetResult]] = {}
    for request_id in sorted(customers):
        mine = customers[request_id]
        by_sync: dict[str, int] = {}
        for sync_name, row_key, count in held:
            if row_key in mine:
                by_sync[sync_name] = by_sync.get(sync_name, 0) + int(count)
        hashes = json.dumps(sorted(identifier_hash(c) for c in mine))
        for sync_name in sorted(by_sync):
            results.setdefault(request_id, []).append(TargetResult(
                f"activation:{sync_name}", "destination_removal", by_sync[sync_name],
                "running", hashes))
    return results


def pending_destination_removals(target: Target, customer_ids: set[str]) -> list[TargetResult]:
    """`destination_removals` of one set of customers."""
    return destination_removals(target, {"": set(customer_ids)}).get("", [])


def refresh_destination_removals(target: Target) -> int:
    """Mark pending destination removals finished once the sync state no longer holds the keys."""
    wh = warehouse_of(target)
    if not wh.exists(SYNC_STATE):
        return 0
    names = TABLES[LOG].names
    pending = [dict(zip(names, row)) for row in wh.rows(
        f"select {', '.join(names)} from {LOG} "
        "where action = 'destination_removal' and status = 'running'")]
    wanted = {(row["target"].split(":", 1)[1], h) for row in pending
              for h in json.loads(row["detail"] or "[]")}
    held: set[tuple[str, str]] = set()
    if wanted:  # one scan of the sync state for every pending removal
        listed, params = value_set(sorted({h for _, h in wanted}), "h")
        key = hash_sql(wh, "%(salt)s || " + text(wh, "row_key"))
        held = {(str(sync), str(h)) for sync, h in wh.rows(
            f"select distinct sync_name, {key} from {SYNC_STATE} where {key} in {listed}",
            {**params, "salt": salt()})}
    done = [row for row in pending
            if not any((row["target"].split(":", 1)[1], h) in held
                       for h in json.loads(row["detail"] or "[]"))]
    if done:
        finished_at = now()
        with wh.transaction():
            for row in done:
                wh.delete_keys(LOG, table_of(LOG, [row]).select(
                    ["request_id", "target", "action", "status"]))
            wh.append(LOG, table_of(LOG, [{**row, "status": "finished",
                                           "completed_at": finished_at} for row in done]))
    partial = [r for (r,) in wh.rows(f"select request_id from {REQUESTS} "
                                     "where status = 'partial'")]
    if partial:
        marks, params = placeholders(partial, "r")
        still_open = {r for (r,) in wh.rows(
            f"select distinct request_id from {LOG} where request_id in ({marks}) "
            "and status in ('running', 'failed')", params)}
        rewrite_rows(wh, REQUESTS, "request_id", {
            r: {"status": "finished"} for r in partial if r not in still_open})
    return len(done)
