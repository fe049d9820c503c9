"""Erasure and activation: a removal carries keys only, and the sync state forgets the person."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestration import privacy
from orchestration.activation.config import parse_config
from orchestration.activation.engine import run_sync
from orchestration.activation.state import ROW_ERRORS, STATE, forget_erased_payloads
from activation_support.http_server import LocalDestination
from activation_support.warehouse import customers_warehouse

ERASED = "c000003"
FIELDS = {"customer_id": "customer_id", "email": "email", "phone": "phone",
          "first_name": "first_name", "city": "city"}


def syncs(server: LocalDestination, tmp_path: Path) -> list[dict[str, Any]]:
    fast = {"max_attempts": 2, "initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.02}
    base = {"source": "main_marts.customers", "primary_key": "customer_id", "fields": FIELDS,
            "retry": fast}
    return [
        {**base, "name": "hook", "mode": "mirror",
         "destination": {"type": "http", "url": f"{server.url}/hook", "timeout_seconds": 2}},
        {**base, "name": "folder", "mode": "mirror",
         "destination": {"type": "files", "url": str(tmp_path / "files"), "format": "jsonl"}},
        {**base, "name": "ads", "mode": "audience",
         "destination": {"type": "ad_audience", "platform": "meta", "audience": "vip",
                         "url": str(tmp_path / "ads")}},
        {**base, "name": "retired", "mode": "mirror",
         "destination": {"type": "http", "url": f"{server.url}/retired", "timeout_seconds": 2}},
    ]


def erase_in_privacy_log(con, customer_id: str) -> None:
    """What the privacy module leaves after an erasure: the person gone from the marts, a
    request `partial` with one running destination removal per sync still holding the key."""
    privacy.ensure_privacy_tables(con)
    con.execute(f"insert into {privacy.REQUESTS} (request_id, action, status) "
                "values ('req-1', 'erase', 'partial')")
    targets = privacy.pending_destination_removals(con, {customer_id})
    assert {t.target for t in targets} == {f"activation:{n}" for n in
                                           ("hook", "folder", "ads", "retired")}
    privacy.write_log(con, "req-1", dt.datetime.now(), targets)
    con.execute("delete from main_marts.customers where customer_id = ?", [customer_id])


def files_written_after(folder: Path, moment: float) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime >= moment]


@pytest.fixture
def server():
    with LocalDestination() as destination:
        yield destination


def test_after_an_erasure_no_byte_of_the_person_reaches_a_destination_or_file(
        tmp_path: Path, server: LocalDestination, monkeypatch: pytest.MonkeyPatch) -> None:
    declared = syncs(server, tmp_path)
    before = parse_config({"syncs": declared}, "before.yml")
    now_path = tmp_path / "syncs.yml"
    now_path.write_text(yaml.safe_dump({"syncs": declared[:3]}, sort_keys=False))  # `retired` was removed
    monkeypatch.setenv("CDP_ACTIVATION_CONFIG", str(now_path))
    with customers_warehouse(tmp_path, 25) as con:
        person = con.execute("select email, phone, first_name from main_marts.customers "
                             "where customer_id = ?", [ERASED]).fetchone()
        for sync in before.syncs:
            assert run_sync(con, before, sync.name).status == "success"
        erase_in_privacy_log(con, ERASED)

        forgotten = forget_erased_payloads(con, privacy.salt())
        assert forgotten["payloads"] == 4 and forgotten["unconfigured"] == 1
        kept = con.execute(f"select sync_name, payload from {STATE} where row_key = ?",
                           [ERASED]).fetchall()
        assert sorted(kept) == [("ads", f'{{"email":"{person[0]}","phone":"{person[1]}"}}'),
                                ("folder", "{}"), ("hook", "{}")]

        sent_before, moment = len(server.state.requests), dt.datetime.now().timestamp()
        current = parse_config(yaml.safe_load(now_path.read_text()), str(now_path))
        for sync in current.syncs:
            result = run_sync(con, current, sync.name)
            assert result.status == "success" and result.counts.removed == 1, result.summary()

        bodies = [str(r["body"]) for r in server.state.requests[sent_before:]]
        assert bodies and all(ERASED in body for body in bodies)
        delete = server.state.requests[-1]["body"]
        assert delete["operation"] == "delete" and delete["rows"] == [
            {"key": ERASED, "fields": {}}]
        written = files_written_after(tmp_path / "files", moment) + files_written_after(
            tmp_path / "ads", moment)
        assert len(written) == 2
        texts = [p.read_text() for p in written]
        email_hash = hashlib.sha256(person[0].encode()).hexdigest()
        assert any(email_hash in text for text in texts)  # the platform can still match
        leftovers = con.execute(
            f"select string_agg(payload || coalesce(removal_fields, ''), '') from {STATE}"
            ).fetchone()[0] + (con.execute(
                f"select string_agg(reason, '') from {ROW_ERRORS}").fetchone()[0] or "")
        for value in person:
            assert all(value not in text for text in bodies + texts), value
            assert value not in leftovers, value

        privacy.refresh_destination_removals(con)
        status = con.execute(f"select status from {privacy.REQUESTS} where request_id = 'req-1'"
                             ).fetchone()[0]
        assert status == "finished"
