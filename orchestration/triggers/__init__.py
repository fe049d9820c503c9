"""Trigger audiences: moments that call for an immediate message, as one row per firing.

`triggers.trigger_events` holds one row per (trigger, customer, episode), keyed by
`trigger_event_id`. An activation sync in mode `insert_only` over this table sends each row once
and never again (its state remembers acknowledged keys), which gives "once per person per
trigger occurrence" with retries and an audit trail for free (docs/near-real-time.md).

Triggers are declared in triggers/*.yml (orchestration/triggers/declared.py validates them and
writes their SQL) and evaluated at `now` (CDP_AS_OF end of day, or the current time), over
customer_events plus the events loaded since identity was last built (the fast path below).
"""


import datetime as dt
import os
from dataclasses import dataclass

import dagster as dg
import duckdb

from orchestration.activation.state import as_warehouse
from orchestration.catalog import catalog
from orchestration.ingestion.contract import SOURCES_BY_NAME
from orchestration.settings import load_settings
from orchestration.triggers.declared import (
    TRIGGERS_DIR, Trigger, TriggerError, load_triggers, parse_triggers, purchase_condition)
from orchestration.warehouse import WAREHOUSE_POOL, Warehouse, WarehouseResource

SCHEMA = "triggers"
TABLE = f"{SCHEMA}.trigger_events"
LOOKBACK_ENV = "CDP_TRIGGER_LOOKBACK_HOURS"


def cart_events() -> tuple[str, ...]:
    """Event types that mean "added to cart": dbt var `features.cart_event_names`, the list the
    feature cart_adds_30d counts (customer_events.event_type is the lowercased track name)."""
    return tuple(str(name).lower() for name in catalog().var("features.cart_event_names"))


def trigger_now(as_of: dt.date | None = None) -> dt.datetime:
    """The evaluation time, naive UTC: end of the CDP_AS_OF day, or now."""
    if as_of is not None:
        return dt.datetime.combine(as_of, dt.time(23, 59, 59))
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def trigger_params(now: dt.datetime, lookback_hours: float,
                   triggers: list[Trigger] | None = None) -> dict[str, dt.datetime]:
    """The times trigger_events_sql compares with, computed here so that the SQL needs no
    engine's interval arithmetic on parameters."""
    params = {"now": now}
    for trigger in triggers if triggers is not None else load_triggers():
        params.update(trigger.params(now, lookback_hours))
    return params


def trigger_events_sql(events_relation: str | None = None,
                       triggers: list[Trigger] | None = None) -> str:
    """Portable SQL (DuckDB, PostgreSQL, Spark) with the parameters of trigger_params, one row
    per firing of each declared trigger (by default over dbt's customer_events)."""
    events_relation = events_relation or catalog().relation("customer_events")
    triggers = triggers if triggers is not None else load_triggers()
    ctes = [cte for trigger in triggers for cte in trigger.sql()]
    ctes_sql = ",\n        ".join(ctes)
    fired = "\n            union all\n            ".join(
        f"select * from {trigger.name}" for trigger in triggers)
    return f"""
        with events as (
            select customer_id, event_id, event_type, occurred_at
            from {events_relation}
            where customer_id is not null and occurred_at <= %(now)s
        ),
        {ctes_sql},
        fired as (
            {fired}
        )
        select
            trigger_name || ':' || customer_id || ':' || episode_key as trigger_event_id,
            trigger_name,
            customer_id,
            triggered_at,
            source_event_at,
            cast(%(now)s as timestamp) as evaluated_at
        from fired
    """


# What the fast path reads of a source's raw row `r` that no dbt var says: its event type (SQL)
# and time column as models/marts/identity/customer_events.sql and the staging model spell them. The rest
# (raw table, record id, identifiers and their order) comes from dbt and the landing contract.
PENDING_EVENT_SQL: dict[str, tuple[str, str]] = {
    "segment_tracks": ("lower(trim(r.event))", "timestamp"),
    "shop_orders": ("'order_' || coalesce(lower(trim(r.status)), 'placed')", "ordered_at"),
}
# Raw identifier values as staging normalises them, for the types that need no lookup (phone
# numbers are parsed by libphonenumber into a lookup: they resolve on the next full run).
_RAW_NORMALISED = {"email": "lower(trim({}))"}
_NEEDS_LOOKUP = ("phone",)


@dataclass(frozen=True)
class PendingSource:
    """A raw table the trigger fast path reads before identity is rebuilt."""

    relation: str  # the raw table (dbt source)
    source: str  # event_id prefix: the `source` of customer_events
    id_column: str  # the raw record id (landing contract)
    event_type: str
    occurred_at: str  # the raw time column (quoted per engine where it is read)
    identifiers: tuple[tuple[str, str], ...]  # (identifier_type, normalised raw value), tried in order


def pending_sources() -> list[PendingSource]:
    """The PENDING_EVENT_SQL sources, each with the identifiers dbt var `identity.sources` gives
    it, strongest first (var `identity.identifier_types` priority); columns the raw table (its
    source YAML) lacks are left out."""
    cat = catalog()
    priority = {kind: spec["priority"] for kind, spec in cat.var("identity.identifier_types").items()}
    entries = {entry["source"]: entry for entry in cat.var("identity.sources")}
    found = []
    for source, (event_type, occurred_at) in PENDING_EVENT_SQL.items():
        node = cat.source_node(SOURCES_BY_NAME[source].dbt_source, source)
        declared = set(node.get("columns", {}))
        kinds = sorted(entries[source].get("identifiers", {}), key=lambda kind: priority[kind])
        identifiers = tuple(
            (kind, _RAW_NORMALISED.get(kind, "trim({})").format(f"r.{column}"))
            for kind in kinds
            if kind not in _NEEDS_LOOKUP
            and (column := entries[source]["identifiers"][kind]) in declared)
        found.append(PendingSource(cat.source(node["source_name"], source), source,
                                   SOURCES_BY_NAME[source].record_id, event_type, occurred_at,
                                   identifiers))
    return found


def _quote(wh: Warehouse, name: str) -> str:
    return f"`{name}`" if wh.engine == "spark" else f'"{name}"'


def _utc_timestamp(wh: Warehouse, expr: str) -> str:
    """A raw time as a UTC timestamp without zone. Spark's timestamps are in the session zone,
    which the Spark target runs in UTC; DuckDB and PostgreSQL convert explicitly."""
    if wh.engine == "spark":
        return f"cast({expr} as timestamp)"
    return f"cast(timezone('UTC', {expr}) as timestamp)"


def pending_events_sql(con: Warehouse | duckdb.DuckDBPyConnection) -> str | None:
    """Events loaded since identity was last built (in raw, not yet in customer_events), with the
    customer the existing identity map gives their identifiers; None when there is nothing to read.

    This is the trigger fast path: a micro-batch need not wait for identity, profiles and the
    rest to rebuild before a known customer's abandoned cart fires. Identifiers the map does not
    know yet (a brand-new visitor) resolve on the next full run, and fire then."""
    wh = as_warehouse(con)
    cat = catalog()
    events, identities = cat.relation("customer_events"), cat.relation("customer_identities")
    if not (wh.exists(events) and wh.exists(identities)):
        return None
    parts = []
    for pending in pending_sources():
        if not wh.exists(pending.relation):
            continue
        event_id = (f"'{pending.source}:' || "
                    f"cast(r.{pending.id_column} as {wh.sql_type('string')})")
        joins = "\n".join(
            f"left join {identities} as i{n} on i{n}.identifier_type = '{kind}' "
            f"and i{n}.identifier_value = {value}"
            for n, (kind, value) in enumerate(pending.identifiers))
        customer = "coalesce(" + ", ".join(f"i{n}.customer_id"
                                           for n in range(len(pending.identifiers))) + ")"
        parts.append(f"""
            select {customer} as customer_id, {event_id} as event_id,
                   {pending.event_type} as event_type,
                   {_utc_timestamp(wh, 'r.' + _quote(wh, pending.occurred_at))} as occurred_at
            from {pending.relation} as r
            {joins}
            where r.{pending.id_column} is not null
              and not exists (select 1 from {events} as e where e.event_id = {event_id})""")
    return " union all ".join(parts) if parts else None


def refresh_trigger_events(con: Warehouse | duckdb.DuckDBPyConnection, now: dt.datetime,
                           lookback_hours: float = 72) -> dict[str, int]:
    """Replace triggers.trigger_events with the firings at `now` (atomically, on the target);
    counts per trigger.

    Reads the unified timeline plus the events loaded since it was built (pending_events_sql)."""
    wh = as_warehouse(con)
    pending = pending_events_sql(wh)
    timeline = catalog().relation("customer_events")
    events = timeline if pending is None else (
        f"(select customer_id, event_id, event_type, occurred_at from {timeline} "
        f"union all {pending})")
    triggers = load_triggers()
    wh.replace_table_as(TABLE, trigger_events_sql(events, triggers),
                        trigger_params(now, lookback_hours, triggers))
    return {str(name): int(n) for name, n in wh.rows(
        f"select trigger_name, count(*) from {TABLE} group by trigger_name order by trigger_name")}


def _lookback_hours() -> float:
    value = os.environ.get(LOOKBACK_ENV, "").strip()
    try:
        return float(value) if value else 72.0
    except ValueError as exc:
        raise ValueError(f"{LOOKBACK_ENV} must be a number of hours, got {value!r}") from exc


@dg.asset(
    key=dg.AssetKey([SCHEMA, "trigger_events"]),
    deps=[dg.AssetKey(["customer_events"])],
    pool=WAREHOUSE_POOL,
    group_name="activation",
    owners=["team:marketing-ops"],
    kinds={"sql"},
    tags={"layer": "activation", "latency": "near-real-time"},
    description=(
        "Trigger audiences declared in triggers/*.yml, one row per firing (trigger_event_id), "
        "e.g. cart_abandoned_1h (latest cart more than 1 hour old, no purchase since) and "
        "first_purchase_today. Feed an insert_only "
        "webhook sync so each firing is sent once. Also reads events loaded since the last "
        "identity build, through the existing identity map (trigger fast path). See "
        "docs/near-real-time.md."
    ),
)
def trigger_events(context: dg.AssetExecutionContext,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
    now = trigger_now(load_settings().as_of)
    with warehouse.open() as wh:
        counts = refresh_trigger_events(wh, now, _lookback_hours())
    context.log.info(f"trigger firings at {now:%Y-%m-%d %H:%M}: {counts or 'none'}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(sum(counts.values())),
        "evaluated_at": now.isoformat(sep=" ", timespec="seconds"),
        **{f"firings_{name}": dg.MetadataValue.int(n) for name, n in counts.items()},
    })


TRIGGER_ASSETS = [trigger_events]
__all__ = ["LOOKBACK_ENV", "SCHEMA", "TABLE", "TRIGGERS_DIR", "TRIGGER_ASSETS", "PENDING_EVENT_SQL",
           "PendingSource", "Trigger", "TriggerError", "cart_events", "load_triggers",
           "parse_triggers", "pending_events_sql", "pending_sources", "purchase_condition",
           "refresh_trigger_events", "trigger_events", "trigger_events_sql", "trigger_now",
           "trigger_params"]
