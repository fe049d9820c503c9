"""Experiments: deterministic sticky assignment with the merge rule, and the results mart on a simulated effect."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import duckdb
import pytest
from engine_support.scratch import ScratchRun

from orchestration import experiments
from orchestration.activation import state
from orchestration.catalog import catalog
from orchestration.experiments import ExperimentConfig, assign

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def plant_merges(con: duckdb.DuckDBPyConnection, merges: list[tuple[str, str]]) -> None:
    relation = catalog().relation("customer_id_merges")
    con.execute(f"create schema if not exists {relation.split('.')[0]}")
    con.execute(f"create or replace table {relation} (old_customer_id varchar, "
                "new_customer_id varchar,"
                " current_customer_id varchar, merged_at timestamp)")
    for old, new in merges:
        con.execute(f"insert into {relation} values (?, ?, ?, ?)", [old, new, new, T0])


def test_assignment_is_deterministic_sticky_and_follows_merges(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    wh = state.as_warehouse(con)
    exp = ExperimentConfig(id="winback", holdout_share=0.2, variants={"a": 0.5, "b": 0.5})
    ids = [f"c{i}" for i in range(3000)]
    first = assign(wh, exp, ids, now=T0)
    shares = {v: sum(1 for x in first.values() if x == v) / len(ids) for v in ("holdout", "a", "b")}
    assert abs(shares["holdout"] - 0.2) < 0.03 and abs(shares["a"] - 0.4) < 0.03
    assert first == {c: experiments.variant_of(exp, experiments.bucket("winback", c)) for c in ids}
    # a changed declaration does not move anyone already assigned; preview persists nothing
    wider = ExperimentConfig(id="winback", holdout_share=0.6, variants={"a": 0.5, "b": 0.5})
    assert assign(wh, wider, ids, now=T0 + dt.timedelta(days=1)) == first
    assign(wh, wider, ["new_one"], persist=False)
    assert con.execute(f"select count(*) from {experiments.ASSIGNMENTS}").fetchone() == (3000,)
    # merges: c0 and c1 retired into the new id s1, c1 assigned earlier -> s1 takes c1's variant;
    # the survivor c2 keeps its own assignment though c3 merged into it
    con.execute(f"update {experiments.ASSIGNMENTS} set assigned_at = assigned_at - interval 1 day"
                " where customer_id = 'c1'")
    plant_merges(con, [("c0", "s1"), ("c1", "s1"), ("c3", "c2")])
    second = assign(wh, wider, ["s1", "c2"], now=T0 + dt.timedelta(days=2))
    assert second == {"s1": first["c1"], "c2": first["c2"]}
    inherited = con.execute(f"select inherited_from from {experiments.ASSIGNMENTS}"
                            " where customer_id = 's1'").fetchall()
    assert inherited == [("c1",)]


def test_variant_shares_are_validated() -> None:
    with pytest.raises(ValueError, match="add up to 1"):
        ExperimentConfig(id="x", holdout_share=0.1, variants={"a": 0.5, "b": 0.4})
    with pytest.raises(ValueError, match="reserved"):
        ExperimentConfig(id="x", holdout_share=0.1, variants={"holdout": 1.0})


@pytest.mark.slow
def test_results_mart_measures_a_simulated_lift(scratch_run: ScratchRun) -> None:
    """4,000 synthetic customers, half held out; the holdout buys within the window with
    probability 0.10, the treated with 0.20 (true lift 0.10, revenue lift 50 * 0.10 = 5).
    Built on the shared scratch copy of the sample run (its transactions replaced), so dbt
    parses partially."""
    warehouse = scratch_run.warehouse
    con = duckdb.connect(str(warehouse))
    wh = state.as_warehouse(con)
    exp = ExperimentConfig(id="sim", holdout_share=0.5, window_days=30)
    variants = assign(wh, exp, [f"u{i}" for i in range(4000)], now=T0)
    plant_merges(con, [])
    rng = random.Random(18)
    orders = []
    for customer, variant in variants.items():
        p = 0.10 if variant == "holdout" else 0.20
        if rng.random() < p:
            orders.append((customer, T0 + dt.timedelta(days=rng.uniform(0, 29)), 50))
        # purchases outside the window (before the assignment, after it) never count
        orders.append((customer, T0 - dt.timedelta(days=3), 999))
        if rng.random() < 0.5:
            orders.append((customer, T0 + dt.timedelta(days=31), 999))
    relation = catalog().relation("int_transactions_identified")
    con.execute(f"create schema if not exists {relation.split('.')[0]}")
    schema, name = relation.split(".")
    if con.execute("select table_type from information_schema.tables where table_schema = ? "
                   "and table_name = ?", [schema, name]).fetchone() == ("VIEW",):
        con.execute(f"drop view {relation}")
    con.execute(f"create or replace table {relation} (transaction_id varchar, customer_id varchar,"
                " source_name varchar, source_record_id varchar, channel varchar,"
                " transacted_at timestamp, amount decimal(18, 2))")
    con.executemany(f"insert into {relation} values (?, ?, 'shop', ?, 'online', ?, ?)",
                    [(f"shop:{i}", c, str(i), at.replace(tzinfo=None), amount)
                     for i, (c, at, amount) in enumerate(orders)])
    con.close()
    scratch_run.build("stg_experiments__assignments", "experiment_results")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            f"select variant, customers, converters, conversion_lift, conversion_lift_ci_low,"
            f" conversion_lift_ci_high, revenue_lift_ci_low, revenue_lift_ci_high"
            f" from {catalog().relation('experiment_results')} order by variant").fetchall()
    assert [r[0] for r in rows] == ["holdout", "treatment"]
    assert rows[0][1] + rows[1][1] == 4000 and rows[0][3] is None
    _, _, converters, lift, low, high, revenue_low, revenue_high = rows[1]
    assert 0 < low < 0.10 < high and low < lift < high
    assert 0 < revenue_low < 5 < revenue_high
    expected = sum(1 for c, at, amount in orders if amount == 50 and variants[c] != "holdout")
    assert converters == expected
