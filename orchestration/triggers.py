"""Trigger audiences: moments that call for an immediate message, as one row per firing.

`triggers.trigger_events` holds one row per (trigger, customer, episode), keyed by
`trigger_event_id`. An activation sync in mode `insert_only` over this table sends each row once
and never again (its state remembers acknowledged keys), which gives "once per person per
trigger occurrence" with retries and an audit trail for free (docs/near-real-time.md).

Triggers, evaluated at `now` (CDP_AS_OF end of day, or the current time):

* `cart_abandoned_1h`: the customer's latest product-added event is more than 1 hour old, no
  purchase (online or store) happened since, and it is within the look-back window
  (CDP_TRIGGER_LOOKBACK_HOURS, default 72) so a first run does not message old carts. Episode:
  the cart event, so a later, new abandoned cart fires again.
* `first_purchase_today`: the customer's first ever purchase happened today (UTC). Episode: the
  customer, so it fires once.
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
from orchestration.warehouse import WAREHOUSE_POOL, Warehouse, WarehouseResource

SCHEMA = "triggers"
TABLE = f"{SCHEMA}.trigger_events"
LOOKBACK_ENV = "CDP_TRIGGER_LOOKBACK_HOURS"


def cart_events() -> tuple[str, ...]:
    """Event types that mean "added to cart": dbt var `features.cart_event_names`, the list the
    feature cart_adds_30d counts (customer_events.event_type is the lowercased track name)."""
    return tuple(str(name).lower() for name in catalog().var("features.cart_event_names"))


def purchase_condition() -> str:
    """SQL over customer_events (event_id, event_type): the event is a purchase by the dbt purchase
    rule (int_transactions_identified): a store transaction, or a shop order whose status is not in
    var features.excluded_order_statuses (customer_events names it `order_<status>`, `order_placed`
    without a status). A tracked "Order Completed" is web telemetry, not a purchase, as for the
    features."""
    excluded = tuple(f"order_{str(status).lower()}"
                     for status in catalog().var("features.excluded_order_statuses"))
    return ("(event_id like 'pos_transactions:%' or "
            f"(event_id like 'shop_orders:%' and event_type not in {_in(excluded)}))")


def trigger_now(as_of: dt.date | None = None) -> dt.datetime:
    """The evaluation time, naive UTC: end of the CDP_AS_OF day, or now."""
    if as_of is not None:
        return dt.datetime.combine(as_of, dt.time(23, 59, 59))
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def trigger_params(now: dt.datetime, lookback_hours: float) -> dict[str, dt.datetime]:
    """The times trigger_events_sql compares with, computed here so that the SQL needs no
    engine's interval arithmetic on parameters."""
    return {"now": now, "an_hour_ago": now - dt.timedelta(hours=1),
            "lookback_start": now - dt.timedelta(hours=lookback_hours)}


def trigger_events_sql(events_relation: str | None = None) -> str:
    """Portable SQL (DuckDB, PostgreSQL, Spark) with the parameters of trigger_params, one row
    per trigger firing (by default over dbt's customer_events)."""
    events_relation = events_relation or catalog().relation("customer_events")
    purchase = purchase_condition().replace("%", "%%")  # pyformat: a literal % is %%
    return f"""
        with events as (
            select customer_id, event_id, event_type, occurred_at
            from {events_relation}
            where customer_id is not null and occurred_at <= %(now)s
        ),
        carts_ranked as (
            select customer_id, event_id, occurred_at,
                row_number() over (
                    partition by customer_id order by occurred_at desc, event_id desc
                ) as cart_rank
            from events
            where event_type in {_in(cart_events())}
        ),
        last_cart as (
            select customer_id, event_id, occurred_at from carts_ranked where cart_rank = 1
        ),
        purchases as (
            select customer_id, occurred_at from events where {purchase}
        ),
        cart_abandoned as (
            select
                'cart_abandoned_1h' as trigger_name,
                c.customer_id,
                c.event_id as episode_key,
                c.occurred_at + interval '1' hour as triggered_at,
                c.occurred_at as source_event_at
            from last_cart as c
            where c.occurred_at <= %(an_hour_ago)s
              and c.occurred_at >= %(lookback_start)s
              and not exists (
                  select 1 from purchases as p
                  where p.customer_id = c.customer_id and p.occurred_at >= c.occurred_at)
        ),
        first_purchase as (
            select customer_id, min(occurred_at) as first_purchase_at
            from purchases group by customer_id
        ),
        first_purchase_today as (
            select
                'first_purchase_today' as trigger_name,
                customer_id,
                customer_id as episode_key,
                first_purchase_at as triggered_at,
                first_purchase_at as source_event_at
            from first_purchase
            where cast(first_purchase_at as date) = cast(%(now)s as date)
        ),
        fired as (
            select * from cart_abandoned
            union all
            select * from first_purchase_today
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
    wh.replace_table_as(TABLE, trigger_events_sql(events), trigger_params(now, lookback_hours))
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
        "Trigger audiences, one row per firing (trigger_event_id): cart_abandoned_1h (latest cart "
        "more than 1 hour old, no purchase since) and first_purchase_today. Feed an insert_only "
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
