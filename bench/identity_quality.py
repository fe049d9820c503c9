"""Score identity resolution against ground truth: the sample generator's or the adversarial one's.

Pairwise precision, recall and F1 over source records (two records are a pair when they share a
profile / a true person), and the largest number of true people in one profile. On adversarial
data (tests/identity_support) also the oracle's deterministic ceiling and recall / ceiling.

    .venv/bin/python -m bench.identity_quality --warehouse /tmp/w.duckdb --truth DIR/_ground_truth
    .venv/bin/python -m bench.identity_quality adversarial --people 2000 --seed 5 --work /tmp/adv \
        --phenomena all,none,each
    .venv/bin/python -m bench.identity_quality sweep --people 2000 --seed 5 --work /tmp/adv \
        --thresholds 2,3,4,6,8,12
    .venv/bin/python -m bench.identity_quality mixed --warehouse /tmp/adv/all/warehouse.duckdb \
        --truth /tmp/adv/all/landing/_ground_truth

`mixed` explains the false merges: for every profile holding several true people, the identifiers
in it whose records belong to more than one person (what joined them), and the false pairs per
kind of joining identifier.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml

from orchestration.catalog import catalog
from tests.identity_support.generator import ALL_ON, NONE, PHENOMENA, Phenomena, generate
from tests.identity_support.oracle import ceiling
from tests.identity_support.quality import ROOT, Quality, load, run_dbt, score, score_warehouse

__all__ = ["Quality", "score"]


@dataclass(frozen=True)
class AdversarialResult:
    phenomena: str
    people: int
    precision: float
    recall: float
    ceiling: float
    recall_of_ceiling: float
    max_people_per_profile: int
    profiles_with_several_people: int
    seconds: float


def phenomena_sets(spec: str) -> list[tuple[str, Phenomena]]:
    """`all`, `none`, `each` (every phenomenon alone) or phenomenon names, comma-separated."""
    sets: list[tuple[str, Phenomena]] = []
    for name in spec.split(","):
        if name == "all":
            sets.append(("all", ALL_ON))
        elif name == "none":
            sets.append(("none", NONE))
        elif name == "each":
            sets.extend((p, ALL_ON.only(p)) for p in PHENOMENA)
        elif name in PHENOMENA:
            sets.append((name, ALL_ON.only(name)))
        else:
            raise SystemExit(f"unknown phenomenon {name!r}: use all, none, each or {PHENOMENA}")
    return sets


def build(people: int, seed: int, phenomena: Phenomena, work: Path) -> tuple[Path, Path]:
    """Generate, load and run staging + identity; returns (warehouse, ground-truth folder)."""
    shutil.rmtree(work, ignore_errors=True)
    truth = generate(people, seed, work / "landing", phenomena)
    warehouse = work / "warehouse.duckdb"
    load(work / "landing", warehouse)
    run_dbt(warehouse)
    return warehouse, truth


def measure(name: str, people: int, warehouse: Path, truth: Path,
            started: float) -> AdversarialResult:
    quality = score_warehouse(warehouse, truth)
    top = ceiling(truth)
    return AdversarialResult(
        phenomena=name, people=people, precision=quality.precision, recall=quality.recall,
        ceiling=top, recall_of_ceiling=quality.recall / top if top else 1.0,
        max_people_per_profile=quality.max_people_per_profile,
        profiles_with_several_people=quality.profiles_with_several_people,
        seconds=time.monotonic() - started)


def adversarial(people: int, seed: int, spec: str, work: Path) -> list[AdversarialResult]:
    results = []
    for name, phenomena in phenomena_sets(spec):
        started = time.monotonic()
        warehouse, truth = build(people, seed, phenomena, work / name)
        results.append(measure(name, people, warehouse, truth, started))
        print(json.dumps(asdict(results[-1])), file=sys.stderr)
    return results


def identity_vars_with(threshold: int) -> dict[str, Any]:
    """The project's identity vars with every default junk threshold set to `threshold`."""
    identity = copy.deepcopy(yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]
                             ["identity"])
    defaults = identity["junk_max_distinct"]["default"]
    identity["junk_max_distinct"]["default"] = {key: threshold for key in defaults}
    return identity


def sweep(people: int, seed: int, thresholds: list[int], work: Path) -> list[AdversarialResult]:
    """All phenomena on; the identity models re-run with each default junk threshold."""
    warehouse, truth = build(people, seed, ALL_ON, work / "sweep")
    results = []
    for threshold in thresholds:
        started = time.monotonic()
        run_dbt(warehouse, staging=False, identity_vars=identity_vars_with(threshold))
        results.append(measure(f"junk threshold {threshold}", people, warehouse, truth, started))
        print(json.dumps(asdict(results[-1])), file=sys.stderr)
    return results


# Relations filled from the dbt catalog when the query runs (one home for table names).
MIXED_SQL = """
with truth as (select * from read_parquet(?)),
records as (
    select records.customer_id, truth.person_id
    from {source_records} as records
    inner join truth using (source, source_record_id)
),
cells as (select customer_id, person_id, count(*) as n from records group by all),
false_pairs as (
    select first.customer_id, sum(first.n * second.n) as false_pairs,
           count(distinct first.person_id) + 1 as people
    from cells as first
    inner join cells as second
        on first.customer_id = second.customer_id and first.person_id < second.person_id
    group by first.customer_id
),
several_people as (
    -- identifiers whose records belong to more than one true person
    select observed.identifier_type, observed.identifier_value,
           count(distinct truth.person_id) as people
    from {identifiers_observed} as observed
    inner join truth using (source, source_record_id)
    group by all
    having count(distinct truth.person_id) > 1
)
select false_pairs.customer_id, max(false_pairs.people) as people,
       max(false_pairs.false_pairs) as false_pairs,
       coalesce(string_agg(distinct several_people.identifier_type, '+'
                           order by several_people.identifier_type), '?') as joined_by,
       string_agg(several_people.identifier_type || ':' || several_people.identifier_value
                  || ' (' || several_people.people || ' people)', ', ') as identifiers
from false_pairs
left join {identities} as identities using (customer_id)
left join several_people using (identifier_type, identifier_value)
group by false_pairs.customer_id
order by people desc, false_pairs desc
"""


def mixed_profiles(warehouse: Path, truth: Path) -> str:
    """Profiles holding several true people: false pairs per joining identifier type, and the
    profiles with more than two people with the identifiers that joined them."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cat = catalog()
        sql = MIXED_SQL.format(
            source_records=cat.relation("customer_source_records"),
            identifiers_observed=cat.relation("int_identity_identifiers_observed"),
            identities=cat.relation("customer_identities"))
        rows = con.execute(sql, [str(truth / "truth.parquet")]).fetchall()
    finally:
        con.close()
    by_kind: dict[str, list[int]] = {}
    for _customer, _people, pairs, joined_by, _identifiers in rows:
        totals = by_kind.setdefault(joined_by, [0, 0])
        totals[0] += 1
        totals[1] += int(pairs)
    lines = ["| Joined by | Profiles | False pairs |", "|---|---|---|"]
    lines += [f"| {kind} | {n:,} | {pairs:,} |"
              for kind, (n, pairs) in sorted(by_kind.items(), key=lambda kv: -kv[1][1])]
    lines += ["", "Profiles with more than 2 people:"]
    lines += [f"- {customer}: {people} people, {pairs} false pairs, {identifiers or 'nothing shared'}"
              for customer, people, pairs, _kind, identifiers in rows if people > 2]
    return "\n".join(lines)


def table(results: list[AdversarialResult]) -> str:
    lines = ["| Phenomena | People | Precision | Recall | Ceiling | Recall / ceiling | "
             "Max people / profile |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.phenomena} | {r.people:,} | {r.precision:.4f} | {r.recall:.4f} | "
              f"{r.ceiling:.4f} | {r.recall_of_ceiling:.3f} | {r.max_people_per_profile} |"
              for r in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list and args_list[0] in ("adversarial", "sweep"):
        parser = argparse.ArgumentParser(description="adversarial identity quality")
        parser.add_argument("mode", choices=["adversarial", "sweep"])
        parser.add_argument("--people", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=5)
        parser.add_argument("--work", type=Path, required=True)
        parser.add_argument("--phenomena", default="all")
        parser.add_argument("--thresholds", default="2,3,4,6,8,12")
        args = parser.parse_args(args_list)
        if args.mode == "adversarial":
            results = adversarial(args.people, args.seed, args.phenomena, args.work)
        else:
            results = sweep(args.people, args.seed,
                            [int(t) for t in args.thresholds.split(",")], args.work)
        print(table(results))
        return
    mixed = bool(args_list) and args_list[0] == "mixed"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True, help="the _ground_truth folder")
    args = parser.parse_args(args_list[1:] if mixed else args_list)
    if mixed:
        print(mixed_profiles(args.warehouse, args.truth))
        return
    con = duckdb.connect(str(args.warehouse), read_only=True)
    print(json.dumps(asdict(score(con, args.truth / "truth.parquet")), indent=2))


if __name__ == "__main__":
    main()
