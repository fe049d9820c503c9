"""The sync engine: read the source from the target, diff against acknowledged state, send, commit per batch."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb
import pandas as pd

from orchestration import experiments
from orchestration.activation import sources, state
from orchestration.activation.config import ActivationConfig, FieldSpec, SyncConfig
from orchestration.activation.delivery import Deliverer, DestinationUnavailable, RateLimiter
from orchestration.activation.destinations import (
    REMOVALS,
    BatchResult,
    Destination,
    DestinationError,
    FieldType,
    Operation,
    Row,
    build_destination,
)
from orchestration.activation.sources import SourceUnavailable
from orchestration.warehouse.base import Warehouse

# change kind -> operation sent, per mode (None: not sent). `revoked`: the row is still in the
# source but a required consent is no longer granted; it is removed downstream in every mode.
OPERATIONS: dict[str, dict[str, str | None]] = {
    "upsert": {"added": "upsert", "changed": "upsert", "revoked": "delete", "removed": None},
    "insert_only": {"added": "insert", "changed": None, "revoked": "delete", "removed": None},
    "update_only": {"added": "update", "changed": "update", "revoked": "delete", "removed": None},
    "mirror": {"added": "upsert", "changed": "upsert", "revoked": "delete", "removed": "delete"},
    "audience": {"added": "add", "changed": "add", "revoked": "remove", "removed": "remove"},
}
TRANSFORMS = ("lower", "upper", "trim", "string", "iso_date")


@dataclass
class SyncResult:
    run_id: str
    sync: str
    status: str  # success | failed | dry_run
    counts: state.RunCounts
    duration_seconds: float = 0.0
    error: str | None = None
    preview: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    invalid_keys: list[tuple[str | None, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("success", "dry_run")

    def summary(self) -> str:
        c = self.counts
        text = (f"sync {self.sync}: {self.status}; added {c.added}, changed {c.changed}, "
                f"removed {c.removed}, sent {c.sent}, acknowledged {c.acknowledged}, "
                f"failed {c.failed}, invalid {c.invalid}, retries {c.retries}, "
                f"{self.duration_seconds:.2f}s")
        return text + (f"; error: {self.error}" if self.error else "")


@dataclass
class Change:
    """One row of the diff: what changed for a key and the operation that sends it."""

    seq: int
    op: str
    change: str
    key: str
    row_hash: str | None
    payload: str | None
    previous: str | None
    removal: str | None


def quote(wh: Warehouse, name: str) -> str:
    """A column name quoted for the engine (Spark quotes with backticks)."""
    if wh.engine == "spark":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def transform_sql(wh: Warehouse, transform: str, expr: str) -> str:
    """A field transform in SQL the three engines share (a date cast to text is ISO on each)."""
    text = wh.sql_type("string")
    return {"lower": f"lower({expr})", "upper": f"upper({expr})", "trim": f"trim({expr})",
            "string": f"cast({expr} as {text})",
            "iso_date": f"cast(cast({expr} as date) as {text})"}[transform]


def to_json(value: Any) -> Any:
    """A source value as the JSON the payload holds (decimals as numbers, dates ISO)."""
    if type(value) in (str, int, bool):  # the common case, without the checks below
        return value
    value = state.clean(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode()
    return value


def payload_json(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def type_name(value: Any) -> str:
    """The column type a destination creates for a field, named as DuckDB names it (the
    destinations' type maps read these names), from a value of the column."""
    value = state.clean(value)
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return f"DECIMAL(38,{-exponent if isinstance(exponent, int) and exponent < 0 else 0})"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP WITH TIME ZONE" if value.tzinfo else "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    return "VARCHAR"


@dataclass
class Snapshot:
    """The source as the diff needs it: valid consented rows, withheld keys, invalid keys."""

    rows: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # key -> payload, hash, removal
    withheld: set[str] = field(default_factory=set)
    invalid: set[str] = field(default_factory=set)
    invalid_keys: list[tuple[str | None, str]] = field(default_factory=list)
    invalid_rows: int = 0


class SyncRun:
    """One run of one sync on an open warehouse session (or a raw DuckDB connection)."""

    def __init__(self, con: Warehouse | duckdb.DuckDBPyConnection, config: ActivationConfig,
                 sync: SyncConfig, destination: Destination | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, log: Callable[[str], None] | None = None) -> None:
        self.wh = state.as_warehouse(con)
        self.config = config
        self.sync = sync
        self.destination = destination
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.log = log or (lambda message: None)
        self.run_id = uuid.uuid4().hex
        self.counts = state.RunCounts()
        self.changes: list[Change] = []
        self.invalid_keys: list[tuple[str | None, str]] = []
        self.variants: dict[str, str] = {}  # customer id -> experiment variant (or holdout)

    # -- snapshot and diff -------------------------------------------------------------------
    def _field_sql(self, spec: FieldSpec, consent_alias: dict[str, str]) -> str:
        if spec.column is not None:
            expr = f"s.{quote(self.wh, spec.column)}"
            return transform_sql(self.wh, spec.transform, expr) if spec.transform else expr
        if spec.consent_status is not None:
            return f"coalesce({consent_alias[spec.consent_status]}.consent_status, 'unspecified')"
        return literal(spec.constant)

    def _consent_cte(self) -> str:
        """`with _act_consent as (...)`: the latest decision per customer and purpose for the
        purposes the sync needs (on a tie a denial wins), read from dbt's consent relation."""
        purposes = sorted(set(self.sync.consent_purposes) | {
            s.consent_status for s in self.sync.fields.values() if s.consent_status})
        if not purposes:
            return ""
        relation = self.config.consents()
        if not self.wh.exists(relation):
            raise SourceUnavailable(
                f"sync {self.sync.name} needs consent ({', '.join(purposes)}) but the consent "
                f"relation {relation} does not exist: build it first; nothing is sent ungated")
        wanted = ", ".join(literal(p) for p in purposes)
        return f"""with _act_consent as (
            select customer_id, purpose, consent_status from (
                select cast(customer_id as {self.wh.sql_type('string')}) as customer_id, purpose,
                    consent_status,
                    row_number() over (
                        partition by customer_id, purpose
                        order by decided_at desc,
                            case when consent_status = 'granted' then 1 else 0 end
                    ) as _rank
                from {relation}
                where purpose in ({wanted})
            ) as _ranked where _rank = 1
        )"""

    def snapshot_sql(self) -> str:
        """One portable query over the source: key columns, whether the consent gate passes
        (1/0), then the fields in declaration order."""
        sync, text = self.sync, self.wh.sql_type("string")
        consent_key = f"cast(s.{quote(self.wh, sync.consent_key)} as {text})"
        joins: list[str] = []
        aliases: dict[str, str] = {}
        for index, purpose in enumerate(sorted({s.consent_status for s in sync.fields.values()
                                                if s.consent_status})):
            alias = f"_c{index}"
            aliases[purpose] = alias
            joins.append(f"left join _act_consent as {alias} on {alias}.customer_id = {consent_key}"
                         f" and {alias}.purpose = {literal(purpose)}")
        if sync.consent_purposes:
            required = ", ".join(literal(p) for p in sorted(set(sync.consent_purposes)))
            joins.append(
                "left join (select customer_id, count(*) as _granted from _act_consent"
                f" where consent_status = 'granted' and purpose in ({required})"
                f" group by customer_id) as _g on _g.customer_id = {consent_key}")
            consented = (f"case when coalesce(_g._granted, 0) = {len(set(sync.consent_purposes))}"
                         " then 1 else 0 end")
        else:
            consented = "1"
        keys = [f"cast(s.{quote(self.wh, c)} as {text}) as _k{i}"
                for i, c in enumerate(sync.primary_key)]
        fields = [f"{self._field_sql(spec, aliases)} as _f{i}"
                  for i, spec in enumerate(sync.fields.values())]
        where = f"where ({sync.filter})" if sync.filter else ""
        return f"""{self._consent_cte()}
            select {', '.join(keys)}, {consented} as _consented, {', '.join(fields)}
            from {self.source_sql()} as s
            {' '.join(joins)}
            {where}"""

    def source_sql(self) -> str:
        return sources.source_sql(self.wh, self.sync)

    def assign_experiment(self, persist: bool) -> None:
        """Holdout or variant of every customer the sync reads (persisted unless previewing)."""
        self.variants = sources.experiment_variants(self.wh, self.sync, persist)

    def snapshot(self) -> tuple[list[FieldType], Snapshot]:
        sync = self.sync
        relation = sync.source_relation()
        if not self.wh.exists(relation):
            raise SourceUnavailable(f"sync {sync.name}: source relation {relation} does not exist")
        names = list(sync.fields)
        removal_names = sync.removal_fields
        width = len(sync.primary_key)
        kinds: dict[str, str] = {}
        seen: dict[str | None, int] = {}
        snap = Snapshot()
        variant_field = sync.experiment.variant_field if sync.experiment else None
        for frame in self.wh.batches(self.snapshot_sql()):
            # Column lists, not itertuples: far faster over Arrow-backed pandas columns.
            for row in zip(*(frame[name].tolist() for name in frame.columns)):
                parts = [state.clean(v) for v in row[:width]]
                if any(part is None for part in parts):
                    key = None
                elif width == 1:
                    key = str(parts[0])
                else:
                    key = payload_json([str(part) for part in parts])
                seen[key] = seen.get(key, 0) + 1
                values = row[width + 1:]
                for name, value in zip(names, values):
                    if name not in kinds and state.clean(value) is not None:
                        kinds[name] = type_name(value)
                if key is None:
                    continue
                variant = self.variants.get(key)
                if not state.clean(row[width]) or variant == experiments.HOLDOUT:
                    snap.withheld.add(key)
                    continue
                document = {name: to_json(value) for name, value in zip(names, values)}
                if variant_field:
                    document[variant_field] = variant
                payload = payload_json(document)
                removal = (payload_json({n: document.get(n) for n in removal_names})
                           if removal_names else "{}")
                snap.rows[key] = (payload, md5(payload), removal)
        for key, n in sorted(seen.items(), key=lambda item: (item[0] is not None, item[0] or "")):
            if key is None:
                snap.invalid_keys.append((None, f"primary key is NULL in {n} source rows"))
            elif n > 1:
                snap.invalid_keys.append((key, f"primary key duplicated in {n} source rows"))
            else:
                continue
            snap.invalid_rows += n
            if key is not None:
                snap.invalid.add(key)
                snap.rows.pop(key, None)
        fields = [FieldType(name, kinds.get(name, "VARCHAR")) for name in names]
        if variant_field:
            fields.append(FieldType(variant_field, "VARCHAR"))
        return fields, snap

    def find_invalid_keys(self, snap: Snapshot) -> None:
        self.counts.invalid = snap.invalid_rows
        self.invalid_keys = snap.invalid_keys

    def committed(self) -> dict[str, dict[str, Any]]:
        """The acknowledged state of the sync: row key -> hash, payload, removal fields."""
        rows = self.wh.rows(
            f"select row_key, row_hash, payload, removal_fields from {state.STATE}"
            " where sync_name = %(sync)s", {"sync": self.sync.name})
        return {key: {"row_hash": row_hash, "payload": payload, "removal_fields": removal}
                for key, row_hash, payload, removal in rows}

    def diff(self, snap: Snapshot) -> None:
        ops = OPERATIONS[self.sync.mode]
        committed = self.committed()
        found: list[tuple[Any, ...]] = []  # change, key, hash, payload, previous, removal
        for key, (payload, row_hash, removal) in snap.rows.items():
            old = committed.get(key)
            if old is None:
                found.append(("added", key, row_hash, payload, None, removal))
            elif old["row_hash"] != row_hash and not _same_payload(old["payload"], payload):
                found.append(("changed", key, row_hash, payload, old["payload"], removal))
        for key, old in committed.items():
            if key in snap.rows or key in snap.invalid:
                continue
            change = "revoked" if key in snap.withheld else "removed"
            found.append((change, key, None, None, old["payload"], old["removal_fields"]))
        sendable = sorted(((ops[change], change, *rest) for change, *rest in found
                           if ops[change] is not None), key=lambda item: (item[0], item[2]))
        self.changes = [Change(seq, *item) for seq, item in enumerate(sendable, start=1)]
        for change in self.changes:
            if change.op in REMOVALS:
                self.counts.removed += 1
            elif change.change == "added":
                self.counts.added += 1
            else:
                self.counts.changed += 1

    # -- sending -----------------------------------------------------------------------------
    def batches(self) -> list[tuple[str, int, int]]:
        ranges: dict[str, list[int]] = {}
        for change in self.changes:
            ranges.setdefault(change.op, [change.seq, change.seq])[1] = change.seq
        size = self.sync.batch_size
        return [(op, lo, min(lo + size - 1, hi))
                for op, (first, hi) in sorted(ranges.items(), key=lambda item: item[1][0])
                for lo in range(first, hi + 1, size)]

    def fetch(self, lo: int, hi: int) -> list[tuple[str, str | None, Row]]:
        """Rows of one batch. A removal carries the key and the removal fields only, never the
        previous payload (an erased person's data must not travel again)."""
        fetched = []
        for change in self.changes[lo - 1:hi]:
            row_hash = change.row_hash or (md5(change.previous) if change.previous is not None
                                           else None)
            if change.payload is None:
                row = Row(change.key, self.removal_row(change.previous, change.removal), None,
                          row_hash)
            else:
                row = Row(change.key, json.loads(change.payload),
                          json.loads(change.previous) if change.previous is not None else None,
                          row_hash)
            fetched.append((change.key, row_hash, row))
        return fetched

    def removal_row(self, previous: str | None, removal: str | None) -> dict[str, Any]:
        """What a removal sends: the stored removal fields, or (state written before they were
        stored) the same fields projected from the previous payload."""
        if removal is not None:
            return json.loads(removal)
        old = json.loads(previous) if previous is not None else {}
        return {name: old.get(name) for name in self.sync.removal_fields}

    def idempotency_key(self, operation: str, rows: list[Row]) -> str:
        digest = hashlib.sha256(f"{self.sync.name}\n{operation}\n".encode())
        for row in rows:
            digest.update(f"{row.key}\x1f{row.content_hash}\x1e".encode())
        return digest.hexdigest()[:32]

    def commit(self, operation: str, lo: int, hi: int, result: BatchResult) -> None:
        """Promote acknowledged rows of one batch to committed state, with its row errors,
        atomically where the engine has transactions (delete the keys, append the new rows)."""
        rejected = set(result.rejected)
        acked = [c for c in self.changes[lo - 1:hi] if c.key not in rejected]
        synced_at = state.now()
        with self.wh.transaction():
            if acked:
                self.wh.delete_keys(state.STATE, pd.DataFrame(
                    {"sync_name": [self.sync.name] * len(acked), "row_key": [c.key for c in acked]}))
            if operation not in REMOVALS and acked:
                self.wh.append(state.STATE, state.table(state.STATE_SCHEMA, [
                    {"sync_name": self.sync.name, "row_key": c.key, "row_hash": c.row_hash,
                     "payload": c.payload, "synced_at": synced_at, "removal_fields": c.removal}
                    for c in acked]))
            self._record_errors("rejected", result.rejected)
            self._record_errors("warning", result.warnings)

    def _record_errors(self, kind: str, errors: dict[Any, str]) -> None:
        if not errors:
            return
        recorded = state.now()
        self.wh.append(state.ROW_ERRORS, state.table(state.ROW_ERRORS_SCHEMA, [
            {"run_id": self.run_id, "sync_name": self.sync.name,
             "row_key": None if key is None else str(key), "error_kind": kind, "reason": reason,
             "recorded_at": recorded} for key, reason in errors.items()]))

    def send(self, destination: Destination, fields: list[FieldType]) -> None:
        deliverer = Deliverer(
            destination=destination, sync=self.sync.name, retry=self.sync.retry,
            limiter=RateLimiter(self.sync.rate_limit_per_second, self.sleep), sleep=self.sleep,
            rng=self.rng, idempotency=self.idempotency_key)
        deliverer.with_retries(lambda: destination.open(fields), "opening the destination")
        try:
            for operation, lo, hi in self.batches():
                fetched = self.fetch(lo, hi)
                rows = [row for _, _, row in fetched]
                try:
                    result = deliverer.deliver(operation, rows)  # type: ignore[arg-type]
                finally:
                    self.counts.retries = deliverer.retries
                self.commit(operation, lo, hi, result)
                self.counts.batches += 1
                self.counts.sent += len(rows)
                self.counts.failed += len(result.rejected)
                self.counts.acknowledged += len(rows) - len(result.rejected)
                self.counts.warnings += len(result.warnings)
                for reason in result.rejected.values():
                    self.counts.failures_by_reason[reason] = (
                        self.counts.failures_by_reason.get(reason, 0) + 1)
                self.log(f"{self.sync.name}: batch {self.counts.batches} {operation} "
                         f"{len(rows)} rows, {len(result.rejected)} rejected")
        finally:
            destination.close()

    def preview(self, limit: int) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for change in self.changes:
            shown = out.setdefault(change.op, [])
            if len(shown) < limit:
                shown.append({"key": change.key, "change": change.change,
                              "fields": json.loads(change.payload) if change.payload is not None
                              else self.removal_row(change.previous, change.removal)})
        return dict(sorted(out.items()))

    def record_invalid(self) -> None:
        if self.invalid_keys:
            self._record_errors("invalid_key", {k: reason for k, reason in self.invalid_keys
                                                if k is not None})
            nulls = [reason for k, reason in self.invalid_keys if k is None]
            if nulls:
                self._record_errors("invalid_key", {None: nulls[0]})

    # -- the run -----------------------------------------------------------------------------
    def run(self, dry_run: bool = False, preview_rows: int = 5) -> SyncResult:
        wh = self.wh
        state.ensure_schema(wh)
        state.apply_retention(wh, self.config.log_retention_days)
        started = state.start_run(wh, self.run_id, self.sync.name, self.sync.destination.type,
                                  self.sync.mode, dry_run)
        result = SyncResult(self.run_id, self.sync.name, "running", self.counts)
        try:
            self.assign_experiment(persist=not dry_run)
            fields, snap = self.snapshot()
            self.find_invalid_keys(snap)
            self.diff(snap)
            result.invalid_keys = self.invalid_keys
            if dry_run:
                result.preview = self.preview(preview_rows)
                result.status = "dry_run"
            else:
                self.record_invalid()
                self.send(self.destination or build_destination(self.sync), fields)
                result.status = "success"
                sent = self.counts.sent
                if sent and self.counts.failed / sent > self.sync.max_failed_ratio:
                    result.status = "failed"
                    result.error = (
                        f"{self.counts.failed} of {sent} rows rejected by the destination "
                        f"({self.counts.failed / sent:.0%}), above max_failed_ratio "
                        f"{self.sync.max_failed_ratio:.0%}; see {state.ROW_ERRORS}")
        except (SourceUnavailable, DestinationUnavailable, DestinationError) as exc:
            result.status = "failed"
            result.error = str(exc)
        except Exception as exc:
            result.status = "failed"
            result.error = f"{type(exc).__name__}: {exc}"
            result.duration_seconds = state.finish_run(wh, started, result.status, self.counts,
                                                       result.error)
            raise
        result.duration_seconds = state.finish_run(wh, started, result.status, self.counts,
                                                   result.error)
        self.log(result.summary())
        return result


def _same_payload(previous: str | None, payload: str) -> bool:
    """Whether a stored payload holds the same values as the new one though its text differs
    (state written by an earlier serialisation): no change to send."""
    if previous is None:
        return False
    try:
        return json.loads(previous) == json.loads(payload)
    except ValueError:
        return False


def run_sync(con: Warehouse | duckdb.DuckDBPyConnection, config: ActivationConfig,
             sync: SyncConfig | str, *, destination: Destination | None = None,
             dry_run: bool = False, preview_rows: int = 5,
             sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
             log: Callable[[str], None] | None = None) -> SyncResult:
    """Run one sync: diff, send only the changes, commit state per acknowledged batch, log the run."""
    sync_config = config.sync(sync) if isinstance(sync, str) else sync
    run = SyncRun(con, config, sync_config, destination=destination, sleep=sleep, rng=rng, log=log)
    return run.run(dry_run=dry_run, preview_rows=preview_rows)
