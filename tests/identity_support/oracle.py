"""The deterministic ceiling: what a perfect linker reaches through single-person identifiers.

Two records are linked when they carry the same canonical identifier (generator's
`identifiers.parquet`: one mailbox for every Gmail spelling, E.164 phones) and that identifier
belongs to one true person only; the ceiling is the pairwise recall of the resulting clusters
(their precision is 1 by construction).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np

PURE_LINKS_SQL = """
with truth as (
    select source, source_record_id, person_id,
        row_number() over (order by source, source_record_id) - 1 as record_index
    from read_parquet(?)
),
held as (
    select identifiers.identifier, truth.record_index, truth.person_id
    from read_parquet(?) as identifiers
    inner join truth using (source, source_record_id)
),
pure as (
    select identifier from held group by identifier having count(distinct person_id) = 1
)
select held.record_index, dense_rank() over (order by held.identifier) - 1 as identifier_index
from held inner join pure using (identifier)
"""


def find(parent: np.ndarray, node: int) -> int:
    root = node
    while parent[root] != root:
        root = parent[root]
    while parent[node] != root:
        parent[node], node = root, parent[node]
    return root


def pairs(counts: np.ndarray) -> int:
    return int((counts * (counts - 1) // 2).sum())


def ceiling(truth_dir: Path) -> float:
    """Pairwise recall of the clusters a perfect single-person-identifier linker would build."""
    con = duckdb.connect()
    truth_file, identifiers_file = str(truth_dir / "truth.parquet"), str(
        truth_dir / "identifiers.parquet")
    people = con.execute(
        "select person_id from read_parquet(?) order by source, source_record_id",
        [truth_file]).fetchnumpy()["person_id"]
    links = con.execute(PURE_LINKS_SQL, [truth_file, identifiers_file]).fetchnumpy()
    con.close()
    records = len(people)
    parent = np.arange(records)
    first_holder: dict[int, int] = {}
    for record, identifier in zip(links["record_index"].tolist(),
                                  links["identifier_index"].tolist(), strict=True):
        holder = first_holder.setdefault(identifier, record)
        a, b = find(parent, record), find(parent, holder)
        if a != b:
            parent[a] = b
    roots = np.array([find(parent, i) for i in range(records)])
    _, cluster_sizes = np.unique(roots, return_counts=True)
    _, person_sizes = np.unique(people, return_counts=True)
    true_pairs = pairs(person_sizes)
    return pairs(cluster_sizes) / true_pairs if true_pairs else 1.0
