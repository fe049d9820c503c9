"""Rectification requests (GDPR Art. 16): corrections recorded with provenance in privacy.rectifications.

A rectification names a person by an identifier (as every request does), a profile attribute
(a key of dbt var `survivorship`) and the corrected value. Each customer of the person's cluster
gets one row: the value that survived before (and its source), the new value, when the request
was received and when it was applied. The dbt model int_profiles_attribute_candidates reads the
table (macro rectification_candidates) as source `privacy_rectification`, which outranks every
survivorship rule, so customers, the publication, the serving snapshot and the destinations show
the new value from the next build of the profile models on. An erasure of the person later
deletes their rows here and blanks the corrected value in the raw request
(`forget_rectifications`): a correction is the person's data like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from orchestration.catalog import catalog
from orchestration.privacy.audit import RECTIFICATIONS, TargetResult, now, table_of
from orchestration.privacy.requests import Batch, rewrite_raw_requests
from orchestration.privacy.sql import Target, placeholders, warehouse_of

Targets = dict[str, list[TargetResult]]


def _survived(target: Target, customers: Sequence[str],
              attributes: Sequence[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """(customer, attribute) -> (value, source) as survivorship chose them before the request."""
    wh = warehouse_of(target)
    survived = catalog().relation("int_profiles_attributes_survived")
    if not customers or not wh.exists(survived):
        return {}
    customer_marks, params = placeholders(sorted(customers), "c")
    attribute_marks, attribute_params = placeholders(sorted(attributes), "a")
    rows = wh.rows(
        f"select customer_id, attribute, attribute_value, attribute_source from {survived} "
        f"where customer_id in ({customer_marks}) and attribute in ({attribute_marks})",
        {**params, **attribute_params})
    return {(c, a): (v, s) for c, a, v, s in rows}


def apply_rectifications(target: Target, batch: Batch,
                         requests: Sequence[dict[str, Any]]) -> Targets:
    """One privacy.rectifications row per customer of each rectification's cluster, in one
    append. A request whose identifier no profile holds fails (nothing to correct)."""
    wh = warehouse_of(target)
    by_id = {r["request_id"]: r for r in requests}
    ids = batch.request_ids(["rectify"])
    for request_id in ids:
        if not batch.customers.get(request_id):
            raise ValueError(f"rectification {request_id}: no customer holds identifier "
                             f"type {by_id[request_id]['identifier_type']!r}")
    everyone = sorted(set().union(*(batch.customers[r] for r in ids))) if ids else []
    before = _survived(wh, everyone, sorted({by_id[r]["attribute"] for r in ids}))
    applied = now()
    rows, targets = [], {}
    for request_id in ids:
        request = by_id[request_id]
        attribute = request["attribute"]
        for customer in sorted(batch.customers[request_id]):
            old_value, old_source = before.get((customer, attribute), (None, None))
            rows.append({"request_id": request_id, "customer_id": customer,
                         "attribute": attribute, "old_value": old_value,
                         "old_value_source": old_source, "new_value": request["new_value"],
                         "received_at": request["received_at"], "applied_at": applied})
        targets[request_id] = [TargetResult(
            RECTIFICATIONS, "rectify", len(batch.customers[request_id]),
            detail=f"{attribute}: wins survivorship from the next profile build")]
    if rows:
        wh.append(RECTIFICATIONS, table_of(RECTIFICATIONS, rows))
    return targets


def forget_rectifications(target: Target, customers: dict[str, set[str]]) -> Targets:
    """For erasures ({request_id: its customers}): delete the customers' privacy.rectifications
    rows and set `new_value` to NULL in the raw rectification requests those rows came from."""
    wh = warehouse_of(target)
    everyone = sorted(set().union(*customers.values())) if customers else []
    if not everyone or not wh.exists(RECTIFICATIONS):
        return {}
    marks, params = placeholders(everyone, "c")
    held = wh.rows(f"select customer_id, request_id from {RECTIFICATIONS} "
                   f"where customer_id in ({marks})", params)
    if not held:
        return {}
    rewrite_raw_requests(wh, "new_value", {r: None for r in sorted({r for _, r in held})})
    wh.delete_keys(RECTIFICATIONS, pa.table({"customer_id": pa.array(
        sorted({c for c, _ in held}), pa.string())}))
    return {request_id: [TargetResult(RECTIFICATIONS, "delete", sum(
        1 for c, _ in held if c in mine))]
        for request_id, mine in customers.items() if any(c in mine for c, _ in held)}
