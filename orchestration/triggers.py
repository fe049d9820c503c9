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

import dagster as dg
import duckdb

from orchestration.settings import load_settings
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource

SCHEMA = "triggers"
TABLE = f"{SCHEMA}.trigger_events"
LOOKBACK_ENV = "CDP_TRIGGER_LOOKBACK_HOURS"
CART_EVENTS = ("product added", "product_added", "cart_add", "add_to_cart")
PURCHASE_EVENTS = ("order completed", "order_completed", "store_purchase")


def trigger_now(as_of: dt.date | None = None) -> dt.datetime:
    """The evaluation time, naive UTC: end of the CDP_AS_OF day, or now."""
    if as_of is not None:
        return dt.datetime.combine(as_of, dt.time(23, 59, 59))
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def trigger_events_sql(events_relation: str = "main_marts.customer_events") -> str:
    """SQL with parameters $now and $lookback_hours, one row per trigger firing."""
    return f"""
        with events as (
            select customer_id, event_id, event_type, occurred_at
            from {events_relation}
            where customer_id is not null and occurred_at <= $now
        ),
        last_cart as (
            select customer_id, event_id, occurred_at
            from events
            where event_type in {_in(CART_EVENTS)}
            qualify row_number() over (
                partition by customer_id order by occurred_at desc, event_id desc) = 1
        ),
        purchases as (
            select customer_id, occurred_at from events where event_type in {_in(PURCHASE_EVENTS)}
        ),
        cart_abandoned as (
            select
                'cart_abandoned_1h' as trigger_name,
                c.customer_id,
                c.event_id as episode_key,
                c.occurred_at + interval 1 hour as triggered_at,
                c.occurred_at as source_event_at
            from last_cart as c
            where c.occurred_at <= $now - interval 1 hour
              and c.occurred_at >= $now - to_hours(cast($lookback_hours as bigint))
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
            where cast(first_purchase_at as date) = cast($now as date)
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
            cast($now as timestamp) as evaluated_at
        from fired
    """


def refresh_trigger_events(con: duckdb.DuckDBPyConnection, now: dt.datetime,
                           lookback_hours: float = 72) -> dict[str, int]:
    """Replace triggers.trigger_events with the firings at `now`; counts per trigger."""
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(f"create or replace table {TABLE} as {trigger_events_sql()}",
                {"now": now, "lookback_hours": lookback_hours})
    return dict(con.execute(
        f"select trigger_name, count(*) from {TABLE} group by 1 order by 1").fetchall())


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
    kinds={"duckdb"},
    tags={"layer": "activation", "latency": "near-real-time"},
    description=(
        "Trigger audiences, one row per firing (trigger_event_id): cart_abandoned_1h (latest cart "
        "more than 1 hour old, no purchase since) and first_purchase_today. Feed an insert_only "
        "webhook sync so each firing is sent once. See docs/near-real-time.md."
    ),
)
def trigger_events(context: dg.AssetExecutionContext,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
    now = trigger_now(load_settings().as_of)
    with warehouse.connect() as con:
        counts = refresh_trigger_events(con, now, _lookback_hours())
    context.log.info(f"trigger firings at {now:%Y-%m-%d %H:%M}: {counts or 'none'}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(sum(counts.values())),
        "evaluated_at": now.isoformat(sep=" ", timespec="seconds"),
        **{f"firings_{name}": dg.MetadataValue.int(n) for name, n in counts.items()},
    })


TRIGGER_ASSETS = [trigger_events]
