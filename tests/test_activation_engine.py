"""Sync engine semantics against a real local HTTP destination: diff, ack, retries, errors, crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from orchestration.activation.engine import run_sync
from orchestration.activation.state import ROW_ERRORS, RUNS, STATE
from orchestration.settings import PROJECT_DIR
from activation_support.http_server import LocalDestination
from activation_support.warehouse import (
    SleepRecorder,
    config,
    customers_warehouse,
    grant_all,
    make_customers,
)


@pytest.fixture
def con(tmp_path: Path):
    with customers_warehouse(tmp_path, 25) as connection:
        yield connection


@pytest.fixture
def server():
    with LocalDestination() as destination:
        yield destination


def hook(server: LocalDestination, **extra) -> dict:
    return {"type": "http", "url": f"{server.url}/hook", "timeout_seconds": 0.3, **extra}


def test_second_run_sends_nothing_and_one_change_sends_one_update(con, server, tmp_path) -> None:
    cfg = config(tmp_path, batch_size=10, destination=hook(server))
    first = run_sync(con, cfg, "crm")
    assert first.status == "success" and first.counts.added == 25
    assert len(server.state.requests) == 3 and len(server.state.records) == 25

    second = run_sync(con, cfg, "crm")
    assert second.counts.sent == 0 and len(server.state.requests) == 3

    con.execute("update main_marts.customers set city = 'Lyon' where customer_id = 'c000007'")
    third = run_sync(con, cfg, "crm")
    assert (third.counts.changed, third.counts.added, third.counts.sent) == (1, 0, 1)
    last = server.state.requests[-1]["body"]
    assert last["operation"] == "upsert" and [r["key"] for r in last["rows"]] == ["c000007"]
    assert last["rows"][0]["fields"]["city"] == "Lyon"
    assert last["rows"][0]["previous"]["city"] == "City0"
    runs = con.execute(f"select status, rows_sent from {RUNS} order by started_at").fetchall()
    assert runs == [("success", 25), ("success", 0), ("success", 1)]


def test_mirror_deletes_rows_that_left_the_source(con, server, tmp_path) -> None:
    cfg = config(tmp_path, mode="mirror", destination=hook(server))
    run_sync(con, cfg, "crm")
    con.execute("delete from main_marts.customers where customer_id in ('c000001', 'c000002')")
    result = run_sync(con, cfg, "crm")
    assert result.counts.removed == 2 and result.counts.sent == 2
    assert server.state.requests[-1]["body"]["operation"] == "delete"
    assert len(server.state.records) == 23 and "c000001" not in server.state.records
    assert con.execute(f"select count(*) from {STATE}").fetchone()[0] == 23


def test_upsert_mode_keeps_rows_that_left_the_source(con, server, tmp_path) -> None:
    cfg = config(tmp_path, destination=hook(server))
    run_sync(con, cfg, "crm")
    con.execute("delete from main_marts.customers where customer_id = 'c000001'")
    assert run_sync(con, cfg, "crm").counts.sent == 0


def test_null_and_duplicate_keys_are_invalid_counted_and_never_sent(con, server, tmp_path) -> None:
    con.execute("""insert into main_marts.customers (customer_id, email) values
        (null, 'nokey@example.com'), ('c000003', 'twin@example.com')""")
    cfg = config(tmp_path, destination=hook(server))
    preview = run_sync(con, cfg, "crm", dry_run=True)
    assert preview.counts.invalid == 3
    assert preview.invalid_keys == [(None, "primary key is NULL in 1 source rows"),
                                    ("c000003", "primary key duplicated in 2 source rows")]
    result = run_sync(con, cfg, "crm")
    assert result.counts.invalid == 3 and result.counts.sent == 24
    assert "c000003" not in server.state.records
    errors = con.execute(f"select row_key, error_kind from {ROW_ERRORS} order by 1").fetchall()
    assert errors == [("c000003", "invalid_key"), (None, "invalid_key")]


def test_dry_run_previews_the_diff_and_sends_nothing(con, server, tmp_path) -> None:
    cfg = config(tmp_path, destination=hook(server))
    result = run_sync(con, cfg, "crm", dry_run=True, preview_rows=2)
    assert result.status == "dry_run" and result.counts.added == 25
    assert [r["key"] for r in result.preview["upsert"]] == ["c000000", "c000001"]
    assert result.preview["upsert"][0]["fields"]["email"] == "user0@example.com"
    assert server.state.requests == []
    assert con.execute(f"select count(*) from {STATE}").fetchone()[0] == 0


def test_throttling_server_errors_and_timeouts_are_retried(con, server, tmp_path) -> None:
    server.state.behaviour.script = ["429:0.25", "500", "hang", "503"]
    server.state.behaviour.hang_seconds = 1.0
    sleep = SleepRecorder()
    cfg = config(tmp_path, destination=hook(server),
                 retry={"max_attempts": 5, "initial_backoff_seconds": 0.01})
    result = run_sync(con, cfg, "crm", sleep=sleep)
    assert result.status == "success" and result.counts.retries == 4
    assert sleep.calls[0] == 0.25  # Retry-After honoured
    assert all(0 < s <= 0.08 for s in sleep.calls[1:])  # exponential backoff with jitter
    assert len(server.state.records) == 25


def test_a_destination_that_stays_down_fails_the_run_and_commits_nothing(con, server,
                                                                         tmp_path) -> None:
    server.state.behaviour.script = ["500"] * 10
    cfg = config(tmp_path, destination=hook(server), retry={"max_attempts": 3,
                                                            "initial_backoff_seconds": 0})
    result = run_sync(con, cfg, "crm", sleep=SleepRecorder())
    assert result.status == "failed"
    assert "still failing after 3 attempts" in result.error and "500" in result.error
    assert con.execute(f"select count(*) from {STATE}").fetchone()[0] == 0
    assert con.execute(f"select status from {RUNS}").fetchone()[0] == "failed"


def test_a_timed_out_run_after_a_good_sync_keeps_the_last_good_state(con, server,
                                                                      tmp_path) -> None:
    cfg = config(tmp_path, destination=hook(server), retry={"max_attempts": 2,
                                                            "initial_backoff_seconds": 0})
    assert run_sync(con, cfg, "crm", sleep=SleepRecorder()).status == "success"
    good_state = con.execute(f"select * from {STATE} order by all").fetchall()

    con.execute("update main_marts.customers set city = 'Lyon' "
                "where customer_id in ('c000003', 'c000011', 'c000019')")
    server.state.behaviour.script = ["hang", "hang"]   # both attempts time out
    server.state.behaviour.hang_seconds = 0.6   # longer than the 0.3 s client timeout
    failed = run_sync(con, cfg, "crm", sleep=SleepRecorder())
    assert failed.status == "failed" and "after 2 attempts" in failed.error
    assert con.execute(f"select * from {STATE} order by all").fetchall() == good_state
    assert [r["city"] for r in server.state.records.values()].count("Lyon") == 0

    recovered = run_sync(con, cfg, "crm", sleep=SleepRecorder())
    assert (recovered.status, recovered.counts.changed, recovered.counts.sent) == ("success", 3, 3)
    assert sorted(k for k, r in server.state.records.items()
                  if r["city"] == "Lyon") == ["c000003", "c000011", "c000019"]
    runs = con.execute(f"select status from {RUNS} order by started_at").fetchall()
    assert runs == [("success",), ("failed",), ("success",)]


def test_rejected_row_is_recorded_and_retried_next_run(con, server, tmp_path) -> None:
    server.state.behaviour.reject_keys = {"c000004"}
    cfg = config(tmp_path, destination=hook(server))
    first = run_sync(con, cfg, "crm")
    assert first.status == "success" and first.counts.failed == 1
    assert len(server.state.records) == 24
    reason = con.execute(f"select reason from {ROW_ERRORS} where row_key = 'c000004'").fetchone()
    assert reason == ("invalid record c000004",)

    server.state.behaviour.reject_keys = set()
    second = run_sync(con, cfg, "crm")
    assert second.counts.sent == 1 and second.counts.failed == 0
    assert "c000004" in server.state.records


def test_a_refused_batch_is_split_to_isolate_the_bad_row(con, server, tmp_path) -> None:
    server.state.behaviour.refuse_keys = {"c000009"}
    cfg = config(tmp_path, batch_size=25, destination=hook(server))
    result = run_sync(con, cfg, "crm")
    assert result.counts.failed == 1 and result.counts.acknowledged == 24
    assert set(server.state.records) == {f"c{i:06d}" for i in range(25)} - {"c000009"}
    assert len(server.state.requests) <= 1 + 2 * 5  # bisection: about log2(25) levels


def test_too_many_rejections_fail_the_run_loudly(con, server, tmp_path) -> None:
    server.state.behaviour.reject_keys = {f"c{i:06d}" for i in range(20)}
    cfg = config(tmp_path, destination=hook(server), max_failed_ratio=0.5)
    result = run_sync(con, cfg, "crm")
    assert result.status == "failed" and "20 of 25 rows rejected" in result.error
    assert len(server.state.records) == 5  # what was acknowledged is kept
    assert con.execute(f"select count(*) from {STATE}").fetchone()[0] == 5


def test_auth_and_hmac_signature_headers(con, server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    monkeypatch.setenv("HOOK_HMAC", "k3y")
    server.state.behaviour.expected_token = "s3cret"
    server.state.behaviour.hmac_secret = b"k3y"
    cfg = config(tmp_path, destination=hook(
        server, auth={"env": "HOOK_TOKEN", "prefix": "Bearer "}, hmac={"secret_env": "HOOK_HMAC"}))
    assert run_sync(con, cfg, "crm").status == "success"
    assert len(server.state.records) == 25
    monkeypatch.setenv("HOOK_TOKEN", "wrong")
    con.execute("update main_marts.customers set city = 'X'")
    result = run_sync(con, cfg, "crm")
    assert result.status == "failed" and "401" in result.error


def test_consent_required_but_relation_absent_fails_clearly(con, server, tmp_path) -> None:
    cfg = config(tmp_path, consent_purposes=["email_marketing"], destination=hook(server))
    result = run_sync(con, cfg, "crm")
    assert result.status == "failed"
    assert "main_marts.customer_consents does not exist" in result.error
    assert "ungated" in result.error and server.state.requests == []


def test_consent_gates_and_revocation_removes_downstream(con, server, tmp_path) -> None:
    grant_all(con, ["email_marketing"])
    con.execute("delete from main_marts.customer_consents where customer_id = 'c000000'")
    cfg = config(tmp_path, consent_purposes=["email_marketing"], destination=hook(server))
    run_sync(con, cfg, "crm")
    assert len(server.state.records) == 24 and "c000000" not in server.state.records

    con.execute("""insert into main_marts.customer_consents values
        ('c000005', 'email_marketing', 'denied', timestamptz '2024-06-01 00:00:00+00')""")
    result = run_sync(con, cfg, "crm")
    assert result.counts.removed == 1
    assert server.state.requests[-1]["body"]["operation"] == "delete"
    assert "c000005" not in server.state.records


CRASH_AFTER_REQUESTS = 3


def test_a_killed_run_resumes_without_loss_or_duplicates(tmp_path, server) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    make_customers(con, 25)
    con.close()
    config_file = tmp_path / "syncs.yml"
    config_file.write_text(yaml.safe_dump({"syncs": [{
        "name": "crm", "source": "main_marts.customers", "primary_key": "customer_id",
        "batch_size": 5, "fields": {"email": "email", "city": "city"},
        "destination": {"type": "http", "url": f"{server.url}/hook"}}]}))
    command = [sys.executable, "-m", "orchestration.activation", "run", "crm",
               "--config", str(config_file), "--warehouse", str(warehouse)]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    process: subprocess.Popen | None = None

    def kill_on_third_batch(request: dict) -> None:
        if len(server.state.requests) == CRASH_AFTER_REQUESTS and process is not None:
            os.kill(process.pid, signal.SIGKILL)  # the batch lands, its acknowledgement never does

    server.state.behaviour.on_request = kill_on_third_batch
    process = subprocess.Popen(command, env=env, cwd=PROJECT_DIR, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert len(server.state.records) == 15  # three batches applied, two acknowledged

    server.state.behaviour.on_request = None
    rerun = subprocess.run(command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True,
                           timeout=60)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert set(server.state.records) == {f"c{i:06d}" for i in range(25)}  # nothing lost
    assert set(server.state.applied.values()) == {1}  # nothing applied twice
    bodies = [r["body"] for r in server.state.requests]
    assert len(bodies) == 3 + 3  # only the unacknowledged batch is re-sent, with the same id
    assert bodies[3]["batch_id"] == bodies[2]["batch_id"]

    con = duckdb.connect(str(warehouse), read_only=True)
    statuses = con.execute(f"select status from {RUNS} order by started_at").fetchall()
    assert statuses == [("interrupted",), ("success",)]
    assert con.execute(f"select count(*) from {STATE}").fetchone()[0] == 25
    con.close()
