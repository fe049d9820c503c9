"""The one executor of data-subject requests: a batch of any size (one request is a batch of one).

Invalid requests fail alone at once. Access requests run first (an export holds the data as it
was at the start of the run), then rectifications, then erase and suppress requests, each group as one batch in one
transaction with one pass per table. A batch that fails is rolled back and split in two halves,
each resolved and executed again, down to the one request that cannot be executed: it fails alone
(status `failed`, the error in `detail` and in the log), the others go through.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestration.privacy import steps
from orchestration.privacy.audit import REQUESTS, TargetResult, now, rewrite_rows, write_logs
from orchestration.privacy.export import collect_exports, write_export
from orchestration.privacy.matching import access_tables
from orchestration.privacy.rectification import apply_rectifications
from orchestration.privacy.requests import (
    Batch, hash_request_identifiers, invalid_reason, items_of, load_batch, record_failure,
    register_requests, request_action,
)
from orchestration.privacy.sources import IdentifiedSource
from orchestration.privacy.sql import Target, warehouse_of
from orchestration.warehouse.base import Warehouse

Log = Callable[[str], None]
AccessTables = tuple[list[tuple[str, str, list[str]]], list[tuple[str, str]]]
GROUPS = (("access",), ("rectify",), ("erase", "suppress"))  # run in this order


@dataclass
class RequestOutcome:
    request_id: str
    action: str | None
    status: str
    targets: list[TargetResult]
    export_path: Path | None = None


def finish_requests(wh: Warehouse, batch: Batch,
                    targets_by_request: dict[str, list[TargetResult]]) -> dict[str, str]:
    """Status, cluster sizes and processed_at of the batch's requests, in one rewrite."""
    statuses = {r: "partial" if any(t.status != "finished" for t in targets) else "finished"
                for r, targets in targets_by_request.items()}
    processed = now()
    rewrite_rows(wh, REQUESTS, "request_id", {r: {
        "status": status, "processed_at": processed,
        "customers_in_cluster": len(batch.customers.get(r, ())),
        "identifiers_in_cluster": len(batch.identifiers.get(r, ()))}
        for r, status in statuses.items()})
    return statuses


def _export(wh: Warehouse, batch: Batch, sources: Sequence[IdentifiedSource],
            request_ids: Sequence[str], scanned: AccessTables
            ) -> tuple[dict[str, list[TargetResult]], dict[str, Path]]:
    """The access requests of the batch: one JSON file each; their identifiers hashed. A
    relation no query can read is left out of every export and named in the log: the request
    ends `partial`."""
    tables, unreadable = scanned
    exports = collect_exports(wh, batch, sources, tables)
    targets, paths = {}, {}
    for request_id in request_ids:
        export = exports.get(request_id, {})
        paths[request_id] = write_export(request_id, batch.customers.get(request_id, set()),
                                         export)
        targets[request_id] = [TargetResult("export", "export", sum(map(len, export.values())),
                                            detail=str(paths[request_id]))] + [
            TargetResult(relation, "export", 0, "failed",
                         f"not readable, left out of the export: {error}"[:500])
            for relation, error in unreadable]
    hash_request_identifiers(wh, batch, {}, ["access"])
    return targets, paths


def _run(wh: Warehouse, requests: Sequence[dict[str, Any]],
         sources: Sequence[IdentifiedSource], started: dt.datetime) -> list[RequestOutcome]:
    """Resolve and execute the requests (all of one group) as one batch, in one transaction
    where the engine has them (on Spark every step is re-runnable: see docs/privacy.md)."""
    ids = [r["request_id"] for r in requests]
    actions = {r["request_id"]: request_action(r["request_type"]) for r in requests}
    paths: dict[str, Path] = {}
    exporting = all(a == "access" for a in actions.values())
    # listed and probed before the transaction: a failed read would abort it
    scanned = access_tables(wh) if exporting else ([], [])
    with wh.transaction():
        batch = load_batch(wh, items_of(requests))
        if exporting:
            targets, paths = _export(wh, batch, sources, ids, scanned)
        elif all(a == "rectify" for a in actions.values()):
            targets = apply_rectifications(wh, batch, requests)
        else:
            targets = steps.erase_and_suppress(wh, batch, sources)
        write_logs(wh, started, targets)
        statuses = finish_requests(wh, batch, targets)
    return [RequestOutcome(r, actions[r], statuses[r], targets[r], paths.get(r)) for r in ids]


def _run_isolating(wh: Warehouse, requests: Sequence[dict[str, Any]],
                   sources: Sequence[IdentifiedSource], started: dt.datetime,
                   log: Log) -> list[RequestOutcome]:
    """`_run`; on failure the halves run on their own, until the failing request is alone."""
    try:
        return _run(wh, requests, sources, started)
    except Exception as error:
        if len(requests) == 1:
            request = requests[0]
            action = request_action(request["request_type"])
            record_failure(wh, request["request_id"], started, str(error), str(action))
            return [RequestOutcome(request["request_id"], action, "failed", [])]
        log(f"batch of {len(requests)} requests failed ({error}); "
            "executing each half on its own to isolate the failing request")
        half = len(requests) // 2
        return (_run_isolating(wh, requests[:half], sources, started, log)
                + _run_isolating(wh, requests[half:], sources, started, log))


def execute_batch(target: Target, requests: Sequence[dict[str, Any]],
                  sources: Sequence[IdentifiedSource],
                  log: Log = lambda message: None) -> list[RequestOutcome]:
    """Execute new requests together: every request gets its record (`running`), invalid ones
    fail alone, then each group runs as one batch, split on failure; outcomes in request order."""
    wh = warehouse_of(target)
    started = now()
    register_requests(wh, requests)
    outcomes: dict[str, RequestOutcome] = {}
    valid = []
    for request in requests:
        reason = invalid_reason(request)
        if reason:
            record_failure(wh, request["request_id"], started, reason, "validate")
            outcomes[request["request_id"]] = RequestOutcome(
                request["request_id"], request_action(request["request_type"]), "failed", [])
        else:
            valid.append(request)
    for kinds in GROUPS:
        group = [r for r in valid if request_action(r["request_type"]) in kinds]
        if group:
            outcomes.update({o.request_id: o for o in _run_isolating(wh, group, sources,
                                                                     started, log)})
    return [outcomes[r["request_id"]] for r in requests]
