"""The history tables (segment_membership_history, customer_journey_transitions) are incremental:
a run applies only today's snapshot, and equals a rebuild from every snapshot (real dbt, DuckDB)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
DBT = str(ROOT / ".venv" / "bin" / "dbt")
SNAPSHOTS = "main_intermediate.int_segment_membership_snapshots"
HISTORY = "main_marts.segment_membership_history"
PAIRS = [(segment, f"c{k}") for segment in ("s1", "s2") for k in range(40)]


def dbt_run(path: Path, *args: str, model: str = "segment_membership_history",
            succeed: bool = True) -> str:
    env = {**os.environ, "CDP_WAREHOUSE": str(path), "CDP_DBT_TARGET": "duckdb"}
    env.pop("CDP_AS_OF", None)
    # dbt parses the whole project again whenever the profile (the warehouse path) differs from
    # the one its partial_parse.msgpack was saved with: a target folder per warehouse file keeps
    # every run after the first on a partial parse (and leaves the project's target/ alone)
    artifacts = path.with_name(f"{path.stem}_dbt")
    result = subprocess.run(
        [DBT, "run", "--profiles-dir", "profiles", "--select", model, *args,
         "--target-path", str(artifacts / "target"), "--log-path", str(artifacts / "logs")],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert (result.returncode == 0) == succeed, result.stdout[-4000:]
    return result.stdout


def write_snapshot(path: Path, day: date, members: set[tuple[str, str]]) -> None:
    con = duckdb.connect(str(path))
    con.execute(f"delete from {SNAPSHOTS} where snapshot_date = ?", [day])
    if members:
        con.executemany(f"insert into {SNAPSHOTS} values (?, ?, ?)",
                        [(day, segment, customer) for segment, customer in sorted(members)])
    con.close()


def rows(path: Path, relation: str = HISTORY) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"select * from {relation} order by all").fetchall()
    finally:
        con.close()


def rebuilt(path: Path, tmp_path: Path, model: str = "segment_membership_history",
            relation: str = HISTORY) -> list[tuple[object, ...]]:
    """The table as a --full-refresh on a copy of the warehouse builds it."""
    copy = tmp_path / "rebuilt.duckdb"
    shutil.copy(path, copy)
    dbt_run(copy, "--full-refresh", model=model)
    return rows(copy, relation)


def churn(rng: random.Random, members: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Most members stay, some leave, some (new or returning) join."""
    return {pair for pair in PAIRS
            if (pair in members and rng.random() < 0.8) or (pair not in members and rng.random() < 0.2)}


def test_history_applies_only_todays_snapshot_and_equals_a_rebuild(tmp_path: Path) -> None:
    rng = random.Random(5)
    path = tmp_path / "segments.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema main_intermediate")
    con.execute(f"create table {SNAPSHOTS} "
                "(snapshot_date date, segment_name varchar, customer_id varchar)")
    con.close()
    today = (datetime.now(timezone.utc) - timedelta(seconds=1)).date()
    members: set[tuple[str, str]] = set(rng.sample(PAIRS, 30))
    for days_ago in range(6, 0, -1):
        if days_ago != 3:  # a day without a run: not a gap
            write_snapshot(path, today - timedelta(days=days_ago), members)
        members = churn(rng, members)
    dbt_run(path)  # first build: every snapshot
    assert rows(path) == rebuilt(path, tmp_path)

    # a stay no snapshot holds any more (its dates were purged): only a rebuild would drop it, so
    # it proves the incremental runs leave closed stays alone
    old_day = today - timedelta(days=400)
    con = duckdb.connect(str(path))
    con.execute(f"insert into {HISTORY} values ('gone', 'c1', ?, ?, false)",
                [old_day, old_day + timedelta(days=1)])
    con.close()
    kept = ("gone", "c1", old_day, old_day + timedelta(days=1), False)

    snapshots_of_today = [churn(rng, members), churn(rng, members), set(), churn(rng, members)]
    for todays_members in snapshots_of_today:  # today's first run, then re-runs of the same day
        write_snapshot(path, today, todays_members)
        dbt_run(path)
        incremental = rows(path)
        assert kept in incremental
        assert [row for row in incremental if row != kept] == rebuilt(path, tmp_path)
        current = {(row[0], row[1]) for row in incremental if row[4]}
        assert current == (todays_members or members_on(path, today - timedelta(days=1)))


def members_on(path: Path, day: date) -> set[tuple[str, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return set(con.execute(f"select segment_name, customer_id from {SNAPSHOTS} "
                               "where snapshot_date = ?", [day]).fetchall())
    finally:
        con.close()


JOURNEY_SNAPSHOTS = "main_intermediate.int_journey_stage_snapshots"
TRANSITIONS = "main_marts.customer_journey_transitions"
STAGES = ["awareness", "consideration", "purchase", "retention", "loyalty"]


def test_journey_transitions_compare_only_today_and_equal_a_rebuild(tmp_path: Path) -> None:
    rng = random.Random(9)
    path = tmp_path / "journeys.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema main_intermediate")
    con.execute(f"create table {JOURNEY_SNAPSHOTS} "
                "(snapshot_date date, customer_id varchar, journey_stage varchar)")
    con.close()

    def write_day(day: date, stages: dict[str, str]) -> None:
        con = duckdb.connect(str(path))
        con.execute(f"delete from {JOURNEY_SNAPSHOTS} where snapshot_date = ?", [day])
        if stages:
            con.executemany(f"insert into {JOURNEY_SNAPSHOTS} values (?, ?, ?)",
                            [(day, customer, stage) for customer, stage in sorted(stages.items())])
        con.close()

    def moved(stages: dict[str, str]) -> dict[str, str]:
        """Some customers change stage (forwards or back), some appear, a few are absent."""
        return {f"c{k}": (rng.choice(STAGES) if rng.random() < 0.3 or f"c{k}" not in stages
                          else stages[f"c{k}"])
                for k in range(60) if rng.random() < 0.9}

    def transitions() -> list[tuple[object, ...]]:
        return rows(path, TRANSITIONS)

    def rebuilt_transitions() -> list[tuple[object, ...]]:
        return rebuilt(path, tmp_path, "customer_journey_transitions", TRANSITIONS)

    today = (datetime.now(timezone.utc) - timedelta(seconds=1)).date()
    stages: dict[str, str] = moved({})
    for days_ago in range(5, 0, -1):
        write_day(today - timedelta(days=days_ago), stages)
        stages = moved(stages)
    dbt_run(path, model="customer_journey_transitions")
    assert transitions() == rebuilt_transitions()

    old_day = today - timedelta(days=400)  # a transition only the table holds
    con = duckdb.connect(str(path))
    con.execute(f"insert into {TRANSITIONS} values ('gone', ?, null, 'awareness')", [old_day])
    con.close()
    kept = ("gone", old_day, None, "awareness")
    for todays_stages in (moved(stages), moved(stages), {}):  # today, then re-runs of today
        write_day(today, todays_stages)
        dbt_run(path, model="customer_journey_transitions")
        incremental = transitions()
        assert kept in incremental
        assert [row for row in incremental if row != kept] == rebuilt_transitions()
        assert {row[0] for row in incremental if row[1] == today} <= set(todays_stages)

    # an as-of run with a later date left rows after today: only a rebuild can apply today
    con = duckdb.connect(str(path))
    con.execute(f"insert into {TRANSITIONS} values ('c1', ?, null, 'awareness')",
                [today + timedelta(days=1)])
    con.close()
    out = dbt_run(path, model="customer_journey_transitions", succeed=False)
    assert "dbt run --full-refresh -s customer_journey_transitions" in out
