"""Identity on adversarial data (tests/identity_support): every phenomenon on, scored on its truth."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from identity_support.generator import ALL_ON, generate
from identity_support.oracle import ceiling
from identity_support.quality import load, run_dbt, score_warehouse

PROFILES_OVER_TWO_PEOPLE = """
with truth as (select * from read_parquet(?)),
people as (
    select records.customer_id, count(distinct truth.person_id) as people
    from truth
    inner join main_marts.customer_source_records as records using (source, source_record_id)
    group by records.customer_id
)
select
    people.customer_id,
    bool_or(identities.identifier_value like 'anon-family-%') as holds_a_family_tablet
from people
inner join main_marts.customer_identities as identities using (customer_id)
where people.people > 2
group by people.customer_id
"""


def test_every_phenomenon_at_once_keeps_precision_and_small_profiles(tmp_path: Path) -> None:
    """500 people with household phones, family devices, shared mailboxes, placeholders, ..."""
    truth = generate(500, seed=17, out=tmp_path / "landing", phenomena=ALL_ON)
    warehouse = tmp_path / "adversarial.duckdb"
    load(tmp_path / "landing", warehouse)
    run_dbt(warehouse)
    quality = score_warehouse(warehouse, truth)
    top = ceiling(truth)
    assert quality.precision >= 0.99
    assert quality.recall >= 0.85 * top
    # the one known way to more than 2 people: anonymous browsing on a shared family tablet
    con = duckdb.connect(str(warehouse), read_only=True)
    large = con.execute(PROFILES_OVER_TWO_PEOPLE, [str(truth / "truth.parquet")]).fetchall()
    con.close()
    assert all(holds_tablet for _, holds_tablet in large), large
    assert quality.max_people_per_profile <= 3


def test_the_oracle_links_only_through_single_person_identifiers(tmp_path: Path) -> None:
    # r1, r2 (Ann) share her phone; r3 (Bob) shares Ann's mailbox with r1: the mailbox is not used
    rows = [("s", "r1", "ann"), ("s", "r2", "ann"), ("s", "r3", "bob"), ("s", "r4", "ann")]
    held = [("s", "r1", "phone:+1"), ("s", "r2", "phone:+1"), ("s", "r1", "email:home"),
            ("s", "r3", "email:home"), ("s", "r4", "email:home")]
    pq.write_table(pa.table(dict(zip(["source", "source_record_id", "person_id"],
                                     zip(*rows, strict=True), strict=True))),
                   tmp_path / "truth.parquet")
    pq.write_table(pa.table(dict(zip(["source", "source_record_id", "identifier"],
                                     zip(*held, strict=True), strict=True))),
                   tmp_path / "identifiers.parquet")
    # Ann has 3 records (3 true pairs); only r1-r2 can be linked
    assert ceiling(tmp_path) == 1 / 3
