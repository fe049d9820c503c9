"""Score identity resolution against ground truth: the sample generator's or the adversarial one's.

Pairwise precision, recall and F1 over source records (two records are a pair when they share a
profile / a true person), and the largest number of true people in one profile. On adversarial
data (tests/identity_support) also the oracle's deterministic ceiling and recall / ceiling.

    .venv/bin/python -m bench.identity_quality --warehouse /tmp/w.duckdb --truth DIR/_ground_truth
    .venv/bin/python -m bench.identity_quality adversarial --people 2000 --seed 5 --work /tmp/adv \
        --phenomena all,none,each
    .venv/bin/python -m bench.identity_quality sweep --people 2000 --seed 5 --work /tmp/adv \
        --thresholds 2,3,4,6,8,12
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True, help="the _ground_truth folder")
    args = parser.parse_args(args_list)
    con = duckdb.connect(str(args.warehouse), read_only=True)
    print(json.dumps(asdict(score(con, args.truth / "truth.parquet")), indent=2))


if __name__ == "__main__":
    main()
