"""Event rules in segment YAML: validation errors naming file, segment and field, the SQL they
compile to, and the event segments of segments/behaviour.yml checked on the shared sample run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
import yaml
from engine_support.scratch import ScratchRun

from orchestration import segments as seg

COLUMNS = {"orders_total": "number", "is_email_unsubscribed": "boolean"}


def load(tmp_path: Path, *conditions: dict) -> list[seg.LoadedSegment]:
    entries = [{"name": f"s{i}", "description": "An audience.", "owner": "team:crm",
                "condition": condition} for i, condition in enumerate(conditions)]
    path = tmp_path / "events.yml"
    path.write_text(yaml.safe_dump({"segments": entries}, sort_keys=False))
    return seg.load_segments([path], columns=COLUMNS, purposes=set())


@pytest.mark.parametrize(("condition", "field", "problem"), [
    ({"event": "Page Viewed", "at_least": 2, "within": "7x"}, "within", "bad window '7x'"),
    ({"event": "Page Viewed", "within": 7}, "within", "string"),
    ({"event": "Page Viewed", "at_least": -1}, "at_least", "greater than or equal to 0"),
    ({"event": "Page Viewed", "where": {"pathname": "/pricing"}}, "where.pathname",
     "unknown event column 'pathname'"),
    ({"event": "Page Viewed", "where": {"revenue": "lots"}}, "where.revenue", "is not a number"),
    ({"event": "store_purchase", "sum": "channel", "gte": 1}, "sum", "is not a number column"),
    ({"event": "store_purchase", "sum": "revenue"}, "event", "exactly one comparison"),
    ({"event": "store_purchase", "gte": 1}, "event", "applies only with `sum`"),
    ({"event": "email_open", "none": True, "at_least": 1}, "event", "one measure per event rule"),
    ({"event": "email_open", "not_within": "60d", "within": "7d"}, "event", "drop `within`"),
    ({"event": "email_open", "at_least": 3, "at_most": 2}, "event", "more than at_most"),
    ({"event": "email_open", "times": 3}, "times", "Extra inputs"),
])
def test_bad_event_rule_names_file_segment_and_field(
    tmp_path: Path, condition: dict, field: str, problem: str,
) -> None:
    with pytest.raises(seg.SegmentError) as error:
        load(tmp_path, {"all": [{"column": "orders_total", "op": "gte", "value": 1}, condition]})
    message = str(error.value)
    line = next(line for line in message.splitlines() if problem in line)
    assert f"{tmp_path / 'events.yml'}: segments[0] (s0)" in line
    assert field in line


def test_event_rules_combine_with_attributes_and_compile_to_correlated_sql(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        {"all": [{"event": "Page Viewed", "where": {"channel": ["web", "app"]}, "at_least": 2,
                  "within": "7d"},
                 {"not": {"event": "order_placed", "last_within": "12h"}},
                 {"column": "is_email_unsubscribed", "op": "is_false"}]},
        {"event": "email_open", "none": True, "within": "2w"},
        {"event": "store_purchase", "sum": "revenue", "gt": 99.5, "within": "30m"},
    )
    sql = [seg.compile_condition(item.segment.condition, COLUMNS) for item in loaded]
    assert "events.event_type = lower('Page Viewed')" in sql[0]
    assert "events.channel in ('web', 'app')" in sql[0]
    assert "dbt.dateadd('day', -7, as_of_timestamp())" in sql[0]
    assert ") >= 2" in sql[0]
    assert "not coalesce(exists (select 1 from events" in sql[0]
    assert "dbt.dateadd('hour', -12, as_of_timestamp())" in sql[0]
    assert sql[1].startswith("not exists (") and "dbt.dateadd('day', -14," in sql[1]
    assert "coalesce(sum(events.revenue), 0)" in sql[2] and sql[2].endswith("> 99.5")
    assert "dbt.dateadd('minute', -30," in sql[2]
    model = seg.render_members_model(loaded, COLUMNS)
    assert "select * from {{ ref('customer_events') }}" in model


def test_event_segments_match_the_sample_run_events(scratch_run: ScratchRun) -> None:
    """The members of segments/behaviour.yml, evaluated by dbt on a copy of the run's warehouse
    as of the sample's last day and recomputed in Python from its customer_events: each segment
    is non-empty on the sample and has exactly the expected customers."""
    copy = scratch_run.warehouse
    as_of = dt.date(2026, 10, 31)  # the sample generator's default end date
    result = scratch_run.dbt("run", "--quiet", "--select", "int_segment_members_evaluated",
                             CDP_AS_OF=as_of.isoformat())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with duckdb.connect(str(copy), read_only=True) as con:
        schema = con.execute("select table_schema from information_schema.tables "
                             "where table_name = 'customer_events'").fetchone()[0]
        events = con.execute(f"select customer_id, event_type, channel, occurred_at, revenue "
                             f"from {schema}.customer_events where customer_id is not null"
                             ).fetchall()
        members_schema = con.execute("select table_schema from information_schema.tables "
                                     "where table_name = 'int_segment_members_evaluated'"
                                     ).fetchone()[0]
        members = con.execute(f"select segment_name, customer_id from "
                              f"{members_schema}.int_segment_members_evaluated").fetchall()
        subscribed = {row[0] for row in con.execute(
            f"select customer_id from {members_schema}.int_customers_segment_inputs "
            "where is_email_unsubscribed = false").fetchall()}
    bound = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())

    def times(event_type: str, channel: str | None = None) -> dict[str, list]:
        found: dict[str, list] = {}
        for customer, kind, chan, at, revenue in events:
            if kind == event_type and at < bound and (channel is None or chan == channel):
                found.setdefault(customer, []).append((at, revenue or 0))
        return found

    since = {days: bound - dt.timedelta(days=days) for days in (30, 60, 90)}
    views, checkouts = times("product viewed", "web"), times("checkout started")
    expected = {
        "product_browsers_no_checkout": {
            c for c, rows in views.items()
            if sum(at >= since[30] for at, _ in rows) >= 3
            and not any(at >= since[30] for at, _ in checkouts.get(c, []))},
        "store_spenders_90d": {
            c for c, rows in times("store_purchase").items()
            if sum(revenue for at, revenue in rows if at >= since[90]) >= 100},
        "email_silent_60d": {
            c for c, rows in times("email_open").items()
            if not any(at >= since[60] for at, _ in rows) and c in subscribed},
    }
    for name, customers in expected.items():
        actual = {customer for segment, customer in members if segment == name}
        assert customers, f"{name} is empty on the sample: pick a rule the sample fills"
        assert actual == customers, name
