"""BI publication: on DuckDB, copy the marts (PII hashed) into a separate, atomically swapped file.

On PostgreSQL and Spark there is no copy: BI tools read the target itself (PostgreSQL: the roles
of dbt var `pii_access`; Spark: the Thrift server), docs/bi.md. The asset then records why.
"""

import datetime as dt
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.catalog import Catalog, catalog
from orchestration.dbt_assets import PROJECT, TRANSLATOR, ensure_manifest
from orchestration.fingerprints import digest, relation_fingerprint
from orchestration.private_files import private_build_dir, publish_private
from orchestration.record_ids import (
    clear_record_id_sources,
    column_meta,
    embedded_pii_source_column,
    sql_string_list,
)
from orchestration.settings import (
    PROJECT_DIR,
    default_salt_warning,
    load_settings,
    pii_salt,
    publication_file_mode,
)
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource

# Tables written by Python assets (tables of the dbt source `predictions`, no model YAML):
# published as they are, they hold no PII. The source name is also their asset-key prefix.
PYTHON_ASSET_SOURCE = "predictions"
PYTHON_ASSET_TABLES = ("customer_predictions", "ltv_model_fits")


@dataclass(frozen=True)
class PublishedTable:
    name: str
    schema: str
    columns: tuple[str, ...]
    pii_columns: frozenset[str]
    # Columns holding source record ids (`embeds_pii` in the YAML) -> the column naming each row's
    # source. A record id is personal when its source's record id is one of its identifiers.
    record_id_columns: Mapping[str, str] = field(default_factory=dict)


def skip_reason(target: str) -> str | None:
    """Why the publication copy is not made on dbt target `target` (None on DuckDB, where it is:
    DuckDB's single writer per file is the only reason a copy exists)."""
    if target == "postgres":
        return ("target postgres: BI tools read the marts in the target directly; PII columns "
                "are readable only by the roles of dbt var pii_access.pii_roles (docs/bi.md)")
    if target == "spark":
        return ("target spark: BI tools read the marts through the Spark Thrift server "
                "(docs/bi.md)")
    return None


def publication_path() -> Path:
    value = os.environ.get("CDP_PUBLICATION", "data/publication/cdp_bi.duckdb")
    path = Path(value)
    return (path if path.is_absolute() else PROJECT_DIR / path).resolve()


def is_pii(column: dict) -> bool:
    return bool(column_meta(column).get("pii"))


def _record_id_columns(node: dict) -> dict[str, str]:
    found = {}
    for name, props in node.get("columns", {}).items():
        try:
            source = embedded_pii_source_column(props)
        except ValueError as exc:
            raise ValueError(f"{node.get('patch_path') or node['path']}: model {node['name']}, "
                             f"column {name}: {exc}") from exc
        if source:
            found[name] = source
    return found


def is_public_mart(node: dict) -> bool:
    """A model under models/marts/ built into the marts schema (the marts layer also holds models
    built on marts that nobody queries, such as the feature summaries: dbt_project.yml keeps
    those in the intermediate schema)."""
    return (node["resource_type"] == "model" and node["path"].startswith("marts/")
            and node.get("config", {}).get("schema") != "intermediate")


def published_tables(manifest: dict) -> list[PublishedTable]:
    """Every public mart (is_public_mart), with the columns its YAML marks `pii: true` and those
    marked `embeds_pii` (record ids)."""
    tables = []
    for node in manifest["nodes"].values():
        if not is_public_mart(node):
            continue
        columns = node.get("columns", {})
        tables.append(PublishedTable(
            name=node["alias"] or node["name"],
            schema=node["schema"],
            columns=tuple(columns),
            pii_columns=frozenset(c for c, props in columns.items() if is_pii(props)),
            record_id_columns=_record_id_columns(node),
        ))
    sources = Catalog(manifest=manifest, vars={})
    tables += [PublishedTable(name=name, columns=(), pii_columns=frozenset(),
                              schema=str(sources.source_node(PYTHON_ASSET_SOURCE, name)["schema"]))
               for name in PYTHON_ASSET_TABLES]
    return sorted(tables, key=lambda t: t.name)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _hashed(column: str, salt: str) -> str:
    return f"sha256({_literal(salt)} || cast({_quote(column)} as varchar))"


def _select_list(con: duckdb.DuckDBPyConnection, table: PublishedTable, salt: str,
                 clear_sources: frozenset[str]) -> str:
    actual = [row[0] for row in con.execute(
        "select column_name from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [table.schema, table.name],
    ).fetchall()]
    parts = []
    for column in actual:
        if column in table.pii_columns:
            parts.append(
                f"case when {_quote(column)} is null then null else "
                f"{_hashed(column, salt)} end as {_quote(column)}"
            )
        elif column in table.record_id_columns:
            source = _quote(table.record_id_columns[column])
            parts.append(
                f"case when {_quote(column)} is null "
                f"or {source} in ({sql_string_list(clear_sources)}) "
                f"then {_quote(column)} else {_hashed(column, salt)} end as {_quote(column)}"
            )
        else:
            parts.append(_quote(column))
    return ", ".join(parts)


@dataclass(frozen=True)
class Publication:
    """What one publish() did: the rows of every table published, and which of them were copied
    from the previous publication (their source unchanged) rather than derived again. `swapped`
    is False when nothing changed: the previous file stays in place, untouched."""

    counts: dict[str, int]
    reused: tuple[str, ...] = ()
    swapped: bool = True


def publish(warehouse: duckdb.DuckDBPyConnection, tables: list[PublishedTable], target: Path,
            salt: str | None = None, clear_sources: Iterable[str] | None = None,
            mode: int | None = None) -> Publication:
    """Write every table into a new file next to `target`, then atomically replace `target`.

    Readers that hold the previous file open keep reading it; new connections see the new one.
    The file is built in a private (0700) folder and gets `mode` (CDP_PUBLICATION_MODE, default
    0600) before it is moved into place, so it is never readable by others, not even half-built.
    Record-id columns are hashed except for rows of `clear_sources` (default: from dbt).

    Only what changed is derived again: each table's fingerprint (its source's content, and the
    select list with its salt and hashing rules; orchestration/fingerprints.py) is stored in the
    file. A table whose fingerprint matches the previous publication's is copied from that file
    as it is (no hashing, no view evaluated); when every table matches, the previous file stays.
    The new file is always written from scratch, never edited in place: a dropped table's pages
    would keep the rows of erased people.
    """
    salt = salt or pii_salt()
    clear = frozenset(clear_record_id_sources() if clear_sources is None else clear_sources)
    with private_build_dir(target) as folder:
        staging_file = folder / target.name
        result = _write_publication(warehouse, tables, staging_file, salt, clear, target)
        file_mode = publication_file_mode() if mode is None else mode
        if result.swapped:
            publish_private(staging_file, target, file_mode)
        else:  # kept: still the mode configured now (CDP_PUBLICATION_MODE may have changed)
            os.chmod(target, file_mode)
    return result


PUBLICATION_TABLE = "_publication"


def _previous_fingerprints(warehouse: duckdb.DuckDBPyConnection, target: Path) -> dict[str, str]:
    """The fingerprints stored in the current publication, attached as `bi_previous`; {} (and
    nothing attached) when there is none or it predates fingerprints."""
    if not target.is_file():
        return {}
    try:
        warehouse.execute(f"attach {_literal(str(target))} as bi_previous (read_only)")
    except duckdb.Error:
        return {}
    try:
        stored = warehouse.execute(
            "select fingerprints_json from bi_previous.main._publication").fetchone()
    except duckdb.Error:  # a publication written before fingerprints: derive everything
        warehouse.execute("detach database if exists bi_previous")
        return {}
    return json.loads(stored[0]) if stored and stored[0] else {}


def _write_publication(warehouse: duckdb.DuckDBPyConnection, tables: list[PublishedTable],
                       staging_file: Path, salt: str, clear: frozenset[str],
                       previous_file: Path) -> Publication:
    counts: dict[str, int] = {}
    fingerprints: dict[str, str] = {}
    reused: list[str] = []
    # Attached first: the fingerprints read the sources, and nothing may read them before the
    # private file exists (tests/test_publication.py, the spy).
    warehouse.execute(f"attach {_literal(str(staging_file))} as bi_publication")
    previous = _previous_fingerprints(warehouse, previous_file)
    in_transaction = False
    try:
        warehouse.execute("begin transaction")  # one commit for the whole file
        in_transaction = True
        pending: list[tuple[PublishedTable, str]] = []
        for table in tables:
            exists = warehouse.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = ? and table_name = ? and table_catalog = current_database()",
                [table.schema, table.name],
            ).fetchone()[0]
            if not exists:
                continue
            select = _select_list(warehouse, table, salt, clear)
            source, rows = relation_fingerprint(warehouse, table.schema, table.name)
            fingerprints[table.name] = digest([source, select])
            counts[table.name] = rows
            pending.append((table, select))
        unchanged = bool(previous) and fingerprints == previous
        if not unchanged:
            for table, select in pending:
                name = _quote(table.name)
                if previous.get(table.name) == fingerprints[table.name]:
                    origin = f"bi_previous.main.{name}"
                    reused.append(table.name)
                else:
                    origin = f"(select {select} from {_quote(table.schema)}.{name})"
                warehouse.execute(
                    f"create table bi_publication.main.{name} as select * from {origin}")
            warehouse.execute(
                f"create table bi_publication.main.{PUBLICATION_TABLE} as select "
                "cast(? as timestamp) as published_at, ? as tables_json, ? as fingerprints_json",
                [dt.datetime.now(dt.UTC).replace(tzinfo=None), json.dumps(counts),
                 json.dumps(fingerprints)],
            )
        warehouse.execute("commit")
        in_transaction = False
        warehouse.execute("detach bi_publication")
    except BaseException:
        if in_transaction:
            warehouse.execute("rollback")
        warehouse.execute("detach database if exists bi_publication")
        raise
    finally:
        warehouse.execute("detach database if exists bi_previous")
    if unchanged:
        return Publication(counts, reused=tuple(sorted(counts)), swapped=False)
    return Publication(counts, reused=tuple(reused))


def _mart_asset_keys() -> list[dg.AssetKey]:
    manifest = json.loads(ensure_manifest(PROJECT).read_text())
    keys = []
    for node in manifest["nodes"].values():
        if is_public_mart(node):
            keys.append(TRANSLATOR.get_asset_key(node))
    return keys + [dg.AssetKey([PYTHON_ASSET_SOURCE, name]) for name in PYTHON_ASSET_TABLES]


@dg.asset(
    name="bi_publication",
    # After the privacy asset: a publication built before it would keep people erased this run.
    deps=[*_mart_asset_keys(), dg.AssetKey(["privacy", "privacy_requests_executed"])],
    pool=WAREHOUSE_POOL,
    group_name="publication",
    owners=["team:data-engineering"],
    kinds={"duckdb"},
    description=(
        "A read-only DuckDB file (CDP_PUBLICATION, default data/publication/cdp_bi.duckdb) with every "
        "mart, PII columns and record ids that are identifiers replaced by salted SHA-256 hashes. "
        "Swapped atomically after each run (mode 0600), so BI tools reading it never block the "
        "pipeline. DuckDB target only: on postgres/spark BI reads the target and this asset "
        "records `skipped` with the reason (docs/bi.md)."
    ),
)
def bi_publication(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    skipped = skip_reason(warehouse.resolved_target)
    if skipped:
        context.log.info(f"bi_publication skipped: {skipped}")
        return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.text(skipped)})
    tables = published_tables(dict(catalog().manifest))
    target = publication_path()
    salt_warning = default_salt_warning(load_settings().landing_dir)
    if salt_warning:
        context.log.warning(salt_warning)
    with warehouse.open() as wh:  # DuckDB here (skip_reason): the copy ATTACHes a second file
        result = publish(wh.con, tables, target)
    counts = result.counts
    context.log.info(f"published {len(counts)} tables to {target}: {len(result.reused)} "
                     "unchanged since the last publication"
                     + ("" if result.swapped else " (all: the file was kept as it was)"))
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(target)),
        "tables": dg.MetadataValue.json(counts),
        "pii_columns_hashed": dg.MetadataValue.json(
            {t.name: sorted(t.pii_columns) for t in tables if t.name in counts}
        ),
        "record_ids_hashed": dg.MetadataValue.json(
            {t.name: sorted(t.record_id_columns) for t in tables
             if t.name in counts and t.record_id_columns}
        ),
        "default_salt_on_real_data": dg.MetadataValue.bool(salt_warning is not None),
        "tables_unchanged": dg.MetadataValue.json(list(result.reused)),
        "file_replaced": dg.MetadataValue.bool(result.swapped),
    })
