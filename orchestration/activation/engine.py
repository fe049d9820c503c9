"""The sync engine: snapshot the source, diff against acknowledged state, send, commit per batch."""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from orchestration.activation import state
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

# change kind -> operation sent, per mode (None: not sent). `revoked`: the row is still in the
# source but a required consent is no longer granted; it is removed downstream in every mode.
OPERATIONS: dict[str, dict[str, str | None]] = {
    "upsert": {"added": "upsert", "changed": "upsert", "revoked": "delete", "removed": None},
    "insert_only": {"added": "insert", "changed": None, "revoked": "delete", "removed": None},
    "update_only": {"added": "update", "changed": "update", "revoked": "delete", "removed": None},
    "mirror": {"added": "upsert", "changed": "upsert", "revoked": "delete", "removed": "delete"},
    "audience": {"added": "add", "changed": "add", "revoked": "remove", "removed": "remove"},
}
TRANSFORMS = {
    "lower": "lower({})",
    "upper": "upper({})",
    "trim": "trim({})",
    "string": "cast({} as varchar)",
    "iso_date": "strftime(cast({} as date), '%Y-%m-%d')",
}


class SourceUnavailable(Exception):
    """The source relation (or the consent relation a sync requires) does not exist."""


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


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def relation_exists(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    try:
        con.execute(f"select * from {relation} limit 0")
    except duckdb.CatalogException:
        return False
    return True


def _field_sql(spec: FieldSpec, consent_alias: dict[str, str]) -> str:
    if spec.column is not None:
        expr = f"s.{quote(spec.column)}"
        return TRANSFORMS[spec.transform].format(expr) if spec.transform else expr
    if spec.consent_status is not None:
        return f"coalesce({consent_alias[spec.consent_status]}.consent_status, 'unspecified')"
    return literal(spec.constant)


def _key_sql(primary_key: list[str]) -> str:
    columns = [f"s.{quote(c)}" for c in primary_key]
    if len(columns) == 1:
        return f"cast({columns[0]} as varchar)"
    any_null = " or ".join(f"{c} is null" for c in columns)
    parts = ", ".join(f"cast({c} as varchar)" for c in columns)
    return f"case when {any_null} then null else cast(to_json([{parts}]) as varchar) end"


def _removal_sql(names: list[str]) -> str:
    """JSON of the fields a removal needs (see SyncConfig.removal_fields), from `_act_src`."""
    if not names:
        return "'{}'"
    return ("cast(to_json(struct_pack("
            + ", ".join(f"{quote(n)} := {quote(n)}" for n in names) + ")) as varchar)")


class SyncRun:
    """One run of one sync on an open warehouse connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, config: ActivationConfig, sync: SyncConfig,
                 destination: Destination | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, log: Callable[[str], None] | None = None) -> None:
        self.con = con
        self.config = config
        self.sync = sync
        self.destination = destination
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.log = log or (lambda message: None)
        self.run_id = uuid.uuid4().hex
        self.counts = state.RunCounts()

    # -- snapshot and diff -------------------------------------------------------------------
    def _consent_table(self) -> None:
        purposes = sorted(set(self.sync.consent_purposes) | {
            s.consent_status for s in self.sync.fields.values() if s.consent_status})
        if not purposes:
            return
        relation = self.config.consents()
        if not relation_exists(self.con, relation):
            raise SourceUnavailable(
                f"sync {self.sync.name} needs consent ({', '.join(purposes)}) but the consent "
                f"relation {relation} does not exist: build it first; nothing is sent ungated")
        wanted = ", ".join(literal(p) for p in purposes)
        # Latest decision per customer and purpose; on a tie a denial wins.
        self.con.execute(f"""
            create or replace temp table _act_consent as
            select customer_id, purpose, consent_status from (
                select cast(customer_id as varchar) as customer_id, purpose, consent_status,
                    row_number() over (
                        partition by customer_id, purpose
                        order by decided_at desc,
                            case when consent_status = 'granted' then 1 else 0 end
                    ) as _rank
                from {relation}
                where purpose in ({wanted})
            ) where _rank = 1""")

    def snapshot(self) -> list[FieldType]:
        sync = self.sync
        if not relation_exists(self.con, sync.source):
            raise SourceUnavailable(f"sync {sync.name}: source relation {sync.source} does not exist")
        self._consent_table()
        consent_key = f"cast(s.{quote(sync.consent_key)} as varchar)"
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
                f" where consent_status = 'granted' and purpose in ({required}) group by 1)"
                f" as _g on _g.customer_id = {consent_key}")
            consented = f"coalesce(_g._granted, 0) = {len(set(sync.consent_purposes))}"
        else:
            consented = "true"
        fields = ",\n                ".join(
            f"{_field_sql(spec, aliases)} as {quote(name)}" for name, spec in sync.fields.items())
        where = f"where ({sync.filter})" if sync.filter else ""
        self.con.execute(f"""
            create or replace temp table _act_src as
            select
                {_key_sql(sync.primary_key)} as _key,
                {consented} as _consented,
                {fields}
            from {sync.source} as s
            {' '.join(joins)}
            {where}""")
        described = self.con.execute("describe _act_src").fetchall()
        return [FieldType(name, str(kind)) for name, kind, *_ in described
                if name not in ("_key", "_consented")]

    def find_invalid_keys(self) -> None:
        self.con.execute("""
            create or replace temp table _act_invalid as
            select _key, count(*) as n from _act_src group by _key
            having _key is null or count(*) > 1""")
        rows = self.con.execute("select _key, n from _act_invalid order by _key nulls first").fetchall()
        self.counts.invalid = sum(n for _, n in rows)
        self.invalid_keys = [
            (key, "primary key is NULL" + f" in {n} source rows" if key is None
             else f"primary key duplicated in {n} source rows") for key, n in rows]

    def diff(self) -> None:
        names = ", ".join(f"{quote(n)} := {quote(n)}" for n in self.sync.fields)
        removal = _removal_sql(self.sync.removal_fields)
        ops = OPERATIONS[self.sync.mode]
        op_case = "case change " + " ".join(
            f"when {literal(change)} then {literal(op)}" for change, op in ops.items()) + " end"
        self.con.execute(f"""
            create or replace temp table _act_diff as
            with snap as (
                select _key, _payload, md5(_payload) as _hash, _removal from (
                    select _key, _consented,
                        cast(to_json(struct_pack({names})) as varchar) as _payload,
                        {removal} as _removal
                    from _act_src
                    where _key is not null
                        and _key not in (select _key from _act_invalid where _key is not null)
                ) where _consented
            ),
            committed as (
                select row_key, row_hash, payload, removal_fields
                from {state.STATE} where sync_name = ?
            ),
            withheld as (
                select distinct _key from _act_src where _key is not null and not _consented
            ),
            changes as (
                select snap._key, case when committed.row_key is null then 'added' else 'changed'
                    end as change, snap._hash, snap._payload, committed.payload as _previous,
                    snap._removal
                from snap left join committed on committed.row_key = snap._key
                where committed.row_key is null or committed.row_hash <> snap._hash
                union all
                select committed.row_key, case when withheld._key is null then 'removed'
                    else 'revoked' end, null, null, committed.payload,
                    committed.removal_fields
                from committed
                left join snap on snap._key = committed.row_key
                left join withheld on withheld._key = committed.row_key
                where snap._key is null
                    and committed.row_key not in (
                        select _key from _act_invalid where _key is not null)
            ),
            operations as (select *, {op_case} as op from changes)
            select row_number() over (order by op, _key) as _seq, op, change, _key, _hash,
                _payload, _previous, _removal
            from operations where op is not null
            order by _seq""", [self.sync.name])
        for change, op, n in self.con.execute(
                "select change, op, count(*) from _act_diff group by all").fetchall():
            if op in REMOVALS:
                self.counts.removed += n
            elif change == "added":
                self.counts.added += n
            else:
                self.counts.changed += n

    # -- sending -----------------------------------------------------------------------------
    def batches(self) -> list[tuple[str, int, int]]:
        ranges = self.con.execute(
            "select op, min(_seq), max(_seq) from _act_diff group by op order by 2").fetchall()
        size = self.sync.batch_size
        return [(op, lo, min(lo + size - 1, hi))
                for op, first, hi in ranges for lo in range(first, hi + 1, size)]

    def fetch(self, lo: int, hi: int) -> list[tuple[str, str | None, Row]]:
        """Rows of one batch. A removal carries the key and the removal fields only, never the
        previous payload (an erased person's data must not travel again)."""
        rows = self.con.execute(
            "select _key, coalesce(_hash, md5(_previous)), _payload, _previous, _removal"
            " from _act_diff where _seq between ? and ? order by _seq",
            [lo, hi]).fetchall()
        fetched = []
        for key, row_hash, payload, previous, removal in rows:
            if payload is None:
                row = Row(key, self.removal_row(previous, removal), None, row_hash)
            else:
                row = Row(key, json.loads(payload),
                          json.loads(previous) if previous is not None else None, row_hash)
            fetched.append((key, row_hash, row))
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
        """Promote acknowledged rows of one batch to committed state, with its row errors, atomically."""
        rejected = list(result.rejected)
        con = self.con
        con.execute("begin transaction")
        try:
            acked = ("from _act_diff where _seq between ? and ?"
                     " and not list_contains(?::varchar[], _key)")
            con.execute(f"delete from {state.STATE} where sync_name = ? and row_key in"
                        f" (select _key {acked})", [self.sync.name, lo, hi, rejected])
            if operation not in REMOVALS:
                con.execute(f"insert into {state.STATE} (sync_name, row_key, row_hash, payload,"
                            f" synced_at, removal_fields) select ?, _key, _hash, _payload, ?,"
                            f" _removal {acked}", [self.sync.name, state.now(), lo, hi, rejected])
            self._record_errors("rejected", result.rejected)
            self._record_errors("warning", result.warnings)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise

    def _record_errors(self, kind: str, errors: dict[Any, str]) -> None:
        if not errors:
            return
        self.con.execute(
            f"insert into {state.ROW_ERRORS} select ?, ?, unnest(?::varchar[]),"
            " ?, unnest(?::varchar[]), ?",
            [self.run_id, self.sync.name, list(errors), kind, list(errors.values()), state.now()])

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
        for (op,) in self.con.execute("select distinct op from _act_diff order by op").fetchall():
            rows = self.con.execute(
                "select _key, change, _payload, _previous, _removal from _act_diff where op = ?"
                " order by _seq limit ?", [op, limit]).fetchall()
            out[op] = [{"key": k, "change": c,
                        "fields": json.loads(p) if p is not None else self.removal_row(old, r)}
                       for k, c, p, old, r in rows]
        return out

    def record_invalid(self) -> None:
        if self.invalid_keys:
            self._record_errors("invalid_key", {k: reason for k, reason in self.invalid_keys
                                                if k is not None})
            nulls = [reason for k, reason in self.invalid_keys if k is None]
            if nulls:
                self.con.execute(
                    f"insert into {state.ROW_ERRORS} values (?, ?, null, 'invalid_key', ?, ?)",
                    [self.run_id, self.sync.name, nulls[0], state.now()])

    # -- the run -----------------------------------------------------------------------------
    def run(self, dry_run: bool = False, preview_rows: int = 5) -> SyncResult:
        con = self.con
        state.ensure_schema(con)
        state.apply_retention(con, self.config.log_retention_days)
        started = state.start_run(con, self.run_id, self.sync.name, self.sync.destination.type,
                                  self.sync.mode, dry_run)
        result = SyncResult(self.run_id, self.sync.name, "running", self.counts)
        self.invalid_keys: list[tuple[str | None, str]] = []
        try:
            fields = self.snapshot()
            self.find_invalid_keys()
            self.diff()
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
            result.duration_seconds = state.finish_run(con, self.run_id, result.status, started,
                                                       self.counts, result.error)
            raise
        result.duration_seconds = state.finish_run(con, self.run_id, result.status, started,
                                                   self.counts, result.error)
        self.log(result.summary())
        return result


def run_sync(con: duckdb.DuckDBPyConnection, config: ActivationConfig, sync: SyncConfig | str, *,
             destination: Destination | None = None, dry_run: bool = False, preview_rows: int = 5,
             sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
             log: Callable[[str], None] | None = None) -> SyncResult:
    """Run one sync: diff, send only the changes, commit state per acknowledged batch, log the run."""
    sync_config = config.sync(sync) if isinstance(sync, str) else sync
    run = SyncRun(con, config, sync_config, destination=destination, sleep=sleep, rng=rng, log=log)
    return run.run(dry_run=dry_run, preview_rows=preview_rows)
