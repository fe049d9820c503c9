"""What a sync reads: a relation or a segment's current members, and an experiment's assignments."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from orchestration import experiments
from orchestration.catalog import catalog
from orchestration.warehouse.base import Warehouse

if TYPE_CHECKING:
    from orchestration.activation.config import SyncConfig

# How the generated model int_segment_definitions names each declared segment.
SEGMENT_NAME = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' as segment_name")


class SourceUnavailable(Exception):
    """The source relation (or the consent relation a sync requires) does not exist."""


def declared_segments() -> set[str] | None:
    """Segment names as dbt compiled them (the model int_segment_definitions, generated from
    segments/*.yml), read through the manifest; None when there is no manifest yet."""
    try:
        code = catalog().node("int_segment_definitions").get("raw_code", "")
    except (KeyError, OSError, ValueError):
        return None
    return set(SEGMENT_NAME.findall(code)) or None


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def source_sql(wh: Warehouse, sync: SyncConfig) -> str:
    """The relation the sync reads, or for `source: {segment: x}` the customers rows of the
    segment's current members (marts segment_memberships joined to marts customers)."""
    if not sync.segment:
        return sync.source_relation()
    members = catalog().relation("segment_memberships")
    if not wh.exists(members):
        raise SourceUnavailable(f"sync {sync.name}: segment memberships {members} do not exist: "
                                "build the segments first")
    return (f"(select c.* from {sync.source_relation()} as c"
            f" inner join {members} as m on m.customer_id = c.customer_id"
            f" where m.segment_name = {_sql_string(sync.segment)})")


def experiment_variants(wh: Warehouse, sync: SyncConfig, persist: bool) -> dict[str, str]:
    """Customer id -> holdout or variant for every customer the sync reads (after its filter),
    assigned by orchestration.experiments.assign; {} for a sync without an experiment."""
    if sync.experiment is None:
        return {}
    where = f"where ({sync.filter})" if sync.filter else ""
    key = sync.primary_key[0]
    ids = [str(row[0]) for row in wh.rows(
        f"select distinct cast(s.{key} as {wh.sql_type('string')})"
        f" from {source_sql(wh, sync)} as s {where}") if row[0] is not None]
    return experiments.assign(wh, sync.experiment, ids, persist=persist)
