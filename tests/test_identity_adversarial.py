"""Identity on adversarial data (tests/identity_support): every phenomenon on, scored on its truth."""

from __future__ import annotations

from pathlib import Path

from identity_support.generator import ALL_ON, generate
from identity_support.oracle import ceiling
from identity_support.quality import load, run_dbt, score_warehouse


def test_every_phenomenon_at_once_keeps_profiles_to_one_or_two_people(tmp_path: Path) -> None:
    """500 people with household phones, family devices, shared mailboxes, placeholders, ..."""
    truth = generate(500, seed=17, out=tmp_path / "landing", phenomena=ALL_ON)
    warehouse = tmp_path / "adversarial.duckdb"
    load(tmp_path / "landing", warehouse)
    run_dbt(warehouse)
    quality = score_warehouse(warehouse, truth)
    top = ceiling(truth)
    assert quality.max_people_per_profile <= 2
    assert quality.precision >= 0.99
    assert 0.5 < top < 1.0
    assert quality.recall >= 0.9 * top


def test_the_oracle_ceiling_falls_with_shared_identifiers(tmp_path: Path) -> None:
    """The ceiling uses only single-person identifiers: sharing them lowers it."""
    clean = ceiling(generate(300, seed=3, out=tmp_path / "clean", phenomena=ALL_ON.only("typos")))
    shared = ceiling(generate(300, seed=3, out=tmp_path / "shared",
                              phenomena=ALL_ON.only("guest_placeholders")))
    assert shared < clean
