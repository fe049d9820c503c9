"""Loading into the dbt target warehouse: parse in DuckDB, write raw rows through the interface.

DuckDB stays the parse engine on every target (CSV/parquet readers, contract checks, rejects):
on a DuckDB target the loader works on the warehouse file directly, as it always has. On any
other target each source is parsed by `load_source` into an in-memory DuckDB seeded with the
target's load log (so unchanged files are skipped by the same rule), and what it produced (the
rows, the rejects and the log rows of the new and changed files) is then written to the target:

* PostgreSQL: one transaction per source: the earlier rows and rejects of a changed file
  deleted by key, the new ones appended (COPY), the log row appended last. A failure rolls the
  whole source back.
* Spark (no transactions, no row-level DML on parquet tables): per table a staging table and a
  swap: the new rows are written to `raw._cdp_stage_<table>`, then the table is rewritten in one
  `replace_table_as` as "its rows of other files + the staged rows". Raw rows, then rejects, then
  the load log row: a failure before the log row leaves the log saying the file was not loaded
  (or loaded in its older version), so the next run loads the file again, and that rewrite drops
  any rows a half-finished run left of it. Readers never see a half-written table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from orchestration.ingestion.contract import LandingLimits, LandingSource, landing_sources
from orchestration.ingestion.discovery import discover_landing
from orchestration.ingestion.empty_tables import ensure_empty_raw_tables
from orchestration.ingestion.errors import LandingError
from orchestration.ingestion.loader import PrivacyAtLoad, load_landing, load_source
from orchestration.ingestion.reports import LandingLoadError, LoadReport, SourceReport
from orchestration.ingestion.schema import (
    ensure_raw_schema,
    load_log_table,
    load_rejects_table,
    raw_schema,
    raw_table,
)
from orchestration.ingestion.session import ident, prepare_session
from orchestration.warehouse import Warehouse
from orchestration.warehouse.duckdb_engine import DuckDBWarehouse

STAGE_PREFIX = "_cdp_stage_"


def load_landing_into(
    landing_dir: Path,
    wh: Warehouse,
    sources: Sequence[LandingSource] | None = None,
    *,
    limits: LandingLimits | None = None,
    privacy: PrivacyAtLoad | None = None,
) -> LoadReport:
    """`load_landing` into the target warehouse `wh`; raise LandingLoadError if a source failed.

    On DuckDB this is `load_landing` on the warehouse file's connection (privacy steps get that
    connection). Elsewhere the privacy steps get `wh`. `sources`: by default the built-in and
    declared ones (`landing_sources()`); the report warns about invalid declarations either way."""
    declaration_warnings: list[str] = []
    every = landing_sources(declaration_warnings)  # the declarations, read once per load
    ensure_empty_raw_tables(wh, every)  # every landing source's raw table exists, loaded or not
    sources = every if sources is None else sources
    if isinstance(wh, DuckDBWarehouse):
        return load_landing(landing_dir, wh.con, sources, limits=limits, privacy=privacy,
                            warnings=declaration_warnings)
    from orchestration.phones import refresh_phone_numbers_on

    landing_dir = Path(landing_dir).resolve()
    limits = limits or LandingLimits.from_env()
    scratch = duckdb.connect()  # in memory: nothing of the DuckDB warehouse file is touched
    try:
        prepare_session(scratch)
        ensure_raw_schema(scratch, sources)
        ensure_target_tables(wh, scratch, sources)
        inventory = discover_landing(landing_dir, sources)
        report = LoadReport(landing_dir=landing_dir,
                            warnings=declaration_warnings + list(inventory.warnings))
        loaded_at = dt.datetime.now(dt.timezone.utc)
        errors: list[LandingError] = []
        for source in sources:
            try:
                result = load_source_into(landing_dir, wh, scratch, source,
                                          inventory.files[source.name], loaded_at=loaded_at,
                                          limits=limits, privacy=privacy)
                report.sources[source.name] = result
                report.warnings += result.warnings
            except LandingError as error:
                report.sources[source.name] = SourceReport(source=source.name, error=str(error))
                errors.append(error)
            except Exception as error:  # noqa: BLE001 (a driver's error fails this source only)
                wrapped = LandingError(f"source {source.name}: writing to {wh.engine} failed, "
                                       f"nothing of it changed: {error}")
                wrapped.__cause__ = error
                report.sources[source.name] = SourceReport(source=source.name,
                                                           error=str(wrapped))
                errors.append(wrapped)
    finally:
        scratch.close()
    report.phones = refresh_phone_numbers_on(wh)
    if privacy is not None:
        report.late_rows_purged = privacy.purge_late_rows(wh)
    if errors:
        raise LandingLoadError(errors, report)
    return report


def ensure_target_tables(wh: Warehouse, scratch: duckdb.DuckDBPyConnection,
                         sources: Sequence[LandingSource]) -> None:
    """The raw tables, log and rejects in the target, typed as the scratch DuckDB's (created
    from their empty Arrow schema), and any column the contract gained since added."""
    wh.ensure_schema(raw_schema())
    for relation in [*(raw_table(s) for s in sources), load_log_table(), load_rejects_table()]:
        ensure_target_columns(wh, scratch, relation)


def ensure_target_columns(wh: Warehouse, scratch: duckdb.DuckDBPyConnection,
                          relation: str) -> list[str]:
    """Create `relation` in the target like the scratch table, or add the columns it lacks
    (extra landing columns are text). Returns the target's columns, in its order."""
    empty = scratch.sql(f"select * from {relation} limit 0").to_arrow_table()
    if not wh.exists(relation):
        wh.append(relation, empty)
        return list(empty.column_names)
    present = wh.columns(relation)
    for name in empty.column_names:
        if name not in present:
            _add_text_column(wh, relation, name)
            present.append(name)
    return present


def _add_text_column(wh: Warehouse, relation: str, name: str) -> None:
    text = wh.sql_type("string")
    if wh.engine == "spark":
        wh.execute(f"alter table {relation} add columns (`{name}` {text})")
    else:
        wh.execute(f"alter table {relation} add column {ident(name)} {text}")


def _seed_load_log(wh: Warehouse, scratch: duckdb.DuckDBPyConnection,
                   source: LandingSource) -> None:
    """The target's log rows of `source` into the scratch log: they decide what is skipped."""
    scratch.execute(f"delete from {load_log_table()}")
    log = wh.query(f"select _source_file, content_sha256, _loaded_at from {load_log_table()} "
                   "where source = %(source)s", {"source": source.name})
    if log.empty:
        return
    scratch.register("_target_log", log)
    try:
        scratch.execute(f"insert into {load_log_table()} (_source_file, source, content_sha256, "
                        "_loaded_at) select _source_file, ?, content_sha256, _loaded_at "
                        "from _target_log", [source.name])
    finally:
        scratch.unregister("_target_log")


def load_source_into(
    landing_dir: Path,
    wh: Warehouse,
    scratch: duckdb.DuckDBPyConnection,
    source: LandingSource,
    files: Sequence[Path] | None,
    *,
    loaded_at: dt.datetime,
    limits: LandingLimits,
    privacy: PrivacyAtLoad | None,
) -> SourceReport:
    """Parse one source's new and changed files in `scratch`, then write them to the target
    all-or-nothing (see the module docstring for what that means on each engine)."""
    for relation in (raw_table(source), load_rejects_table()):
        scratch.execute(f"delete from {relation}")
    _seed_load_log(wh, scratch, source)
    report = load_source(landing_dir, scratch, source, files, loaded_at=loaded_at,
                         limits=limits, privacy=None)
    if not report.files_loaded:
        return report
    columns = ensure_target_columns(wh, scratch, raw_table(source))
    for name in columns:  # columns earlier files added in the target: NULL for these rows
        scratch.execute(f"alter table {raw_table(source)} add column if not exists "
                        f"{ident(name)} varchar")
    selected = ", ".join(ident(c) for c in columns)
    rows = scratch.sql(f"select {selected} from {raw_table(source)}").to_arrow_table()
    rejects = scratch.sql(f"select * from {load_rejects_table()}").to_arrow_table()
    log = scratch.sql(
        f"select * from {load_log_table()} where _loaded_at = $1 order by _source_file",
        params=[loaded_at]).to_arrow_table()
    files_frame = pa.table({"_source_file": pa.array(report.files_loaded, pa.string())})
    write = _write_by_swaps if wh.engine == "spark" else _write_in_transaction
    replaced = write(wh, source, rows, rejects, log, files_frame, privacy, report)
    report.rows_replaced = sum(replaced.values())
    return report


def _write_in_transaction(wh: Warehouse, source: LandingSource, rows: pa.Table,
                          rejects: pa.Table, log: pa.Table, files: pa.Table,
                          privacy: PrivacyAtLoad | None, report: SourceReport) -> dict[str, int]:
    """PostgreSQL: the source's files replaced, privacy applied and logged in one transaction."""
    with wh.transaction():
        replaced = {name: wh.delete_keys(raw_table(source), pa.table({"_source_file": [name]}))
                    for name in files.column("_source_file").to_pylist()}
        wh.delete_keys(load_rejects_table(), files)
        wh.append(raw_table(source), rows)
        wh.append(load_rejects_table(), rejects)
        dropped = _drop_suppressed(wh, source, report.files_loaded, privacy)
        report.rows_loaded -= sum(dropped.values())
        wh.append(load_log_table(), _log_rows(log, replaced, dropped))
    return replaced


def _write_by_swaps(wh: Warehouse, source: LandingSource, rows: pa.Table, rejects: pa.Table,
                    log: pa.Table, files: pa.Table, privacy: PrivacyAtLoad | None,
                    report: SourceReport) -> dict[str, int]:
    """Spark: raw rows, then rejects, each through a staging table and one table rewrite; rows
    of erased people dropped; the load log row last."""
    names = files.column("_source_file").to_pylist()
    params = {f"f{i}": name for i, name in enumerate(names)}
    in_files = ", ".join(f"%(f{i})s" for i in range(len(names)))
    counts = wh.query(f"select _source_file, count(*) as n from {raw_table(source)} "
                      f"where _source_file in ({in_files}) group by _source_file", params)
    replaced = {str(f): int(n) for f, n in zip(counts["_source_file"], counts["n"])}
    for relation, frame in ((raw_table(source), rows), (load_rejects_table(), rejects)):
        stage = f"{raw_schema()}.{STAGE_PREFIX}{relation.split('.')[1].lstrip('_')}"
        wh.replace_table(stage, frame)
        selected = ", ".join(f"`{c}`" for c in frame.column_names)
        wh.replace_table_as(
            relation,
            f"select {selected} from {relation} where _source_file not in ({in_files}) "
            f"union all select {selected} from {stage}", params)
        wh.execute(f"drop table if exists {stage}")
    dropped = _drop_suppressed(wh, source, report.files_loaded, privacy)
    report.rows_loaded -= sum(dropped.values())
    wh.append(load_log_table(), _log_rows(log, replaced, dropped))
    return replaced


def _drop_suppressed(wh: Warehouse, source: LandingSource, files: Sequence[str],
                     privacy: PrivacyAtLoad | None) -> dict[str, int]:
    if privacy is None:
        return {}
    return {name: privacy.drop_suppressed_rows(wh, source.name, name) for name in files}


def _log_rows(log: pa.Table, replaced: dict[str, int], dropped: dict[str, int]) -> pa.Table:
    """The scratch log rows with what only the target knows: rows replaced and rows dropped."""
    names = log.column("_source_file").to_pylist()
    loaded = [n - dropped.get(f, 0) for f, n in zip(names, log.column("rows_loaded").to_pylist())]
    log = log.set_column(log.schema.get_field_index("rows_loaded"), "rows_loaded",
                         pa.array(loaded, pa.int64()))
    return log.set_column(log.schema.get_field_index("rows_replaced"), "rows_replaced",
                          pa.array([replaced.get(f, 0) for f in names], pa.int64()))
