"""After an erasure no byte of the person is left in any file the CDP owns (issue 20, finding 5).

The sample data plus one person with unique values, on a Dagster instance of its own: the loader
and the assets after dbt (privacy, serving snapshot, BI publication, the over-merge guard) run as
real Dagster materialisations, dbt as a real `dbt build` with its own target and log folders.
A first round builds everything (twice for the snapshot, which keeps earlier versions) with the
person in it; a second round loads an erasure request and executes it. Then every file is read
as bytes and searched for the person's email, phone digits, names and customer id.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from engine_support.pipeline import write_rows

from orchestration.ingestion.assets import load_landing_files
from orchestration.privacy import COMPACTION_TARGET, LOG, privacy_requests_executed
from orchestration.publication import bi_publication
from orchestration.quality import QUALITY_CHECKS
from orchestration.serving.assets import serving_snapshot
from orchestration.settings import PROFILES_DIR, PROJECT_DIR
from orchestration.warehouse import WarehouseResource

pytestmark = pytest.mark.slow

EMAIL = "zebulonia.quixtanovar@erase-me.example"
PHONE_DIGITS = "2079460321"  # +44 20 7946 0321, in whatever format a model keeps it
FIRST, LAST = "Zebulonia", "Quixtanovar"
OVER_MERGE_GUARD = next(c for c in QUALITY_CHECKS
                        if any(k.name == "gx_over_merge_guard" for k in c.check_keys))


def add_person(landing: Path) -> None:
    """The person to erase, in three sources, with values no generated customer has."""
    write_rows(landing / "crm_contacts" / "zz_person.csv", "crm_contacts", [{
        "contact_id": "crm-erase-me-1", "email": EMAIL, "phone": "+44 20 7946 0321",
        "first_name": FIRST, "last_name": LAST, "city": "London", "country": "GB",
        "created_at": "2025-01-05T10:00:00Z", "updated_at": "2025-01-05T10:00:00Z"}])
    write_rows(landing / "segment_identifies" / "zz_person.csv", "segment_identifies", [{
        "id": "identify-erase-me-1", "anonymous_id": "anon-erase-me-1",
        "user_id": "user-erase-me-1", "timestamp": "2025-01-06T10:00:00Z", "email": EMAIL,
        "phone": "+442079460321", "first_name": FIRST, "last_name": LAST}])
    write_rows(landing / "shop_orders" / "zz_person.csv", "shop_orders", [{
        "order_id": "ORD-ERASE-ME-1", "shop_customer_id": "shop-erase-me-1", "email": EMAIL,
        "phone": "020 7946 0321", "ordered_at": "2025-01-07T10:00:00Z", "total_amount": "42.00",
        "currency": "GBP", "status": "completed"}])


def dbt_build(tmp: Path) -> None:
    """`dbt build` of everything but the predictions and tests, artifacts and logs under tmp."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "build", "--exclude",
         "int_customer_predictions+", "resource_type:test", "resource_type:unit_test",
         "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROFILES_DIR),
         "--target", "duckdb", "--target-path", str(tmp / "dbt_target"),
         "--log-path", str(tmp / "dbt_logs"), "--quiet"],
        cwd=PROJECT_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def owned_files(roots: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files += [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return sorted(set(files))


def byte_hits(files: Iterable[Path], needles: Iterable[str]) -> dict[str, list[str]]:
    """{file: needles found}, case-insensitive, over the raw bytes."""
    found: dict[str, list[str]] = {}
    for path in files:
        data = path.read_bytes().lower()
        hits = [n for n in needles if n.lower().encode() in data]
        if hits:
            found[str(path)] = hits
    return found


def materialize(assets: list, instance: dg.DagsterInstance, warehouse: Path) -> None:
    result = dg.materialize(assets, instance=instance, raise_on_error=False,
                            resources={"warehouse": WarehouseResource(path=str(warehouse))})
    failures = [e.step_key for e in result.all_events if e.is_step_failure]
    assert result.success, f"failed steps: {failures}"


AFTER_DBT = [privacy_requests_executed, serving_snapshot, bi_publication, OVER_MERGE_GUARD]


def test_an_erasure_leaves_no_byte_of_the_person_in_any_file_the_cdp_owns(
        tmp_path: Path, sample_landing: Path, cdp_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(sample_landing, landing, ignore=shutil.ignore_patterns("_ground_truth"))
    add_person(landing)
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("CDP_LANDING_DIR", str(landing))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("CDP_PRIVACY_EXPORT_DIR", str(tmp_path / "exports"))
    warehouse = Path(cdp_env["CDP_WAREHOUSE"])
    snapshot = Path(cdp_env["CDP_SERVING_SNAPSHOT"])
    instance = dg.DagsterInstance.local_temp(str(home))

    def cdp_files() -> list[Path]:
        """Warehouse (and WAL), publication, every snapshot version, Dagster storage (runs,
        events, compute logs), dbt artifacts and logs, access exports."""
        return owned_files([
            warehouse, warehouse.with_name(warehouse.name + ".wal"),
            Path(cdp_env["CDP_PUBLICATION"]), home, tmp_path / "dbt_target",
            tmp_path / "dbt_logs", tmp_path / "exports",
            *snapshot.parent.glob(f".{snapshot.name}.*")])

    materialize([load_landing_files], instance, warehouse)
    dbt_build(tmp_path)
    materialize(AFTER_DBT, instance, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        customer_id = con.execute("select customer_id from main_marts.customer_identities "
                                  "where identifier_value = ?", [EMAIL]).fetchone()[0]
        # another customer's name changes: the snapshot's inputs differ, so the next run builds
        # a second version beside the first (unchanged inputs keep the version)
        con.execute("update main_marts.customers set first_name = 'Zed' where customer_id = "
                    "(select min(customer_id) from main_marts.customers where customer_id <> ?)",
                    [customer_id])
    materialize(AFTER_DBT, instance, warehouse)  # a second snapshot version beside the first
    needles = (EMAIL, PHONE_DIGITS, FIRST, LAST, customer_id)
    before = byte_hits(cdp_files(), needles)
    # The search can see the person: the warehouse and every snapshot version hold them
    assert str(warehouse) in before, sorted(before)
    versions = [p for p in snapshot.parent.glob(f".{snapshot.name}.*") if ".link." not in p.name]
    assert len(versions) == 2 and all(str(v) in before for v in versions), sorted(before)

    write_rows(landing / "privacy_requests" / "zz_erase.csv", "privacy_requests", [{
        "request_id": "dsr-erase-bytes", "identifier_type": "email", "identifier_value": EMAIL,
        "request_type": "erasure", "received_at": "2026-10-01T10:00:00Z"}])
    materialize([load_landing_files], instance, warehouse)  # staging views see it at once
    materialize(AFTER_DBT, instance, warehouse)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        status = con.execute("select status from privacy.privacy_requests_processed "
                             "where request_id = 'dsr-erase-bytes'").fetchone()
        compactions = con.execute(f"select count(*) from {LOG} where target = ?",
                                  [COMPACTION_TARGET]).fetchone()[0]
    assert status == ("finished",)
    assert byte_hits(cdp_files(), needles) == {}
    assert compactions == 1
