"""The profile lookup API: read-only HTTP access to golden profiles by any identifier.

    GET /v1/profiles/{identifier_type}/{identifier_value}?events=20
    GET /health

Reads the serving snapshot (orchestration/serving/snapshot.py), never the live warehouse, and
switches to a newer snapshot on the first request after it is published. Every /v1 request needs
an API key (header `X-API-Key`) with scope `profiles:read`; personal data (names, email, phone,
city, identifier values, and event ids that embed an identifier such as a CRM contact id or a
loyalty id) is returned only to keys that also hold `pii:read`. An unknown
identifier and an erased person get the same 404.

Run: `CDP_API_KEYS_FILE=keys.yml .venv/bin/python -m orchestration.serving --port 8000`.
"""

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import duckdb
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.security import APIKeyHeader

from orchestration.phones import normalise_phone, phone_rules
from orchestration.serving.keys import PII_READ, PROFILES_READ, ApiKey, KeyStore
from orchestration.serving.mailbox import mailbox, mailbox_rules
from orchestration.serving.snapshot import identifier_types, snapshot_path

MAX_EVENTS = 50
NOT_FOUND = "no profile for this identifier"


def normalise_identifier(identifier_type: str, value: str) -> str:
    """The identifier as customer_identities stores it (emails the mailbox by staging's rules,
    dbt var `email_normalisation`; phones E.164 by the same libphonenumber rule as staging,
    national numbers in the default country)."""
    value = value.strip()
    if identifier_type == "email":
        # an invalid address or a placeholder has no identifier: the lowercased value finds none
        return mailbox(value, mailbox_rules()) or value.lower()
    if identifier_type == "phone":
        # the loader's libphonenumber rule (orchestration/phones.py, dbt vars), default country
        parsed = normalise_phone(value, None, phone_rules()).phone_e164
        if parsed is not None:
            return parsed
        digits = "".join(ch for ch in value if ch.isdigit() or ch == "+")
        return "+" + digits[2:] if digits.startswith("00") else digits
    return value


@dataclass
class _Generation:
    """One opened snapshot file, its erasure lists and its thread-local cursors."""

    target: str
    mtime_ns: int
    connection: duckdb.DuckDBPyConnection
    erased_identities: frozenset[str]
    erased_customers: frozenset[str]
    published_at: str
    local: threading.local


class SnapshotReader:
    """Opens the snapshot read-only and follows its symlink to newer files as they appear.

    Each file is attached in a fresh in-memory database: DuckDB caches database instances by
    path, so connecting to the same path again would keep serving the replaced file."""

    def __init__(self, path: Path, recheck_seconds: float = 1.0) -> None:
        self.path = path
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._generation: _Generation | None = None
        self._checked_at = 0.0

    def _open(self, target: str, mtime_ns: int) -> _Generation:
        con = duckdb.connect(":memory:")
        con.execute("attach ? as snap (read_only)", [target])
        con.execute("use snap")
        erased_identities = frozenset(r[0] for r in con.execute(
            "select identity_id from erased_identities").fetchall())
        erased_customers = frozenset(r[0] for r in con.execute(
            "select customer_id from erased_customers").fetchall())
        published_at = str(con.execute("select published_at from _snapshot").fetchone()[0])
        return _Generation(target, mtime_ns, con, erased_identities, erased_customers,
                           published_at, threading.local())

    def generation(self) -> _Generation:
        now = time.monotonic()
        current = self._generation
        if current is not None and now - self._checked_at < self.recheck_seconds:
            return current
        with self._lock:
            self._checked_at = now
            try:
                target = os.path.realpath(self.path)
                mtime_ns = os.stat(target).st_mtime_ns
            except FileNotFoundError:
                if self._generation is not None:
                    return self._generation  # keep serving the file we have
                raise HTTPException(503, "no serving snapshot published yet") from None
            if (self._generation is None or self._generation.target != target
                    or self._generation.mtime_ns != mtime_ns):
                self._generation = self._open(target, mtime_ns)
            return self._generation

    def cursor(self, generation: _Generation) -> duckdb.DuckDBPyConnection:
        cursor = getattr(generation.local, "cursor", None)
        if cursor is None:
            cursor = generation.connection.cursor()
            cursor.execute("use snap")
            generation.local.cursor = cursor
        return cursor


PROFILE_COLUMNS = ("attributes_json", "pii_json", "identifiers_json", "segments_json",
                   "journey_json", "features_json", "predictions_json", "events_json",
                   "events_pii_json")


def lookup(reader: SnapshotReader, identifier_type: str, value: str, *, pii: bool,
           events: int) -> dict | None:
    generation = reader.generation()
    cursor = reader.cursor(generation)
    resolved_from = None
    if identifier_type == "customer_id":
        customer_id = value
        row = cursor.execute("select customer_id from customer_id_aliases "
                             "where old_customer_id = ?", [value]).fetchone()
        if row is not None:
            customer_id, resolved_from = row[0], value
    else:
        identity_id = f"{identifier_type}:{value}"
        if identity_id in generation.erased_identities:
            return None
        row = cursor.execute("select customer_id from identity_lookup where identity_id = ?",
                             [identity_id]).fetchone()
        if row is None:
            return None
        customer_id = row[0]
    if customer_id in generation.erased_customers:
        return None
    row = cursor.execute(f"select {', '.join(PROFILE_COLUMNS)} from profiles "
                         "where customer_id = ?", [customer_id]).fetchone()
    if row is None:
        return None
    doc = dict(zip(PROFILE_COLUMNS, row, strict=True))

    def parsed(column: str, empty: object) -> object:
        return json.loads(doc[column]) if doc[column] is not None else empty

    profile: dict[str, object] = {
        "customer_id": customer_id,
        "matched_by": identifier_type,
        "attributes": parsed("attributes_json", {}),
    }
    if resolved_from:
        profile["merged_from_customer_id"] = resolved_from
    if pii:
        profile["personal"] = parsed("pii_json", {})
        profile["identifiers"] = parsed("identifiers_json", [])
    profile.update({
        "pii_included": pii,
        "segments": parsed("segments_json", []),
        "journey": parsed("journey_json", None),
        "features": parsed("features_json", None),
        "predictions": parsed("predictions_json", None),
        # without pii:read, event ids that embed an identifier (CRM, loyalty) are null
        "recent_events": parsed("events_pii_json" if pii else "events_json", [])[:events],
        "snapshot_published_at": generation.published_at,
    })
    return profile


def create_app(snapshot: Path | None = None, keys: KeyStore | None = None,
               recheck_seconds: float = 1.0) -> FastAPI:
    reader = SnapshotReader(snapshot or snapshot_path(), recheck_seconds)
    store = keys if keys is not None else KeyStore.from_env()
    app = FastAPI(title="Open CDP profile API", version="1",
                  description=__doc__.split("\n\n")[0])
    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

    def caller(secret: Annotated[str | None, Depends(api_key_header)]) -> ApiKey:
        key = store.resolve(secret)
        if key is None:
            raise HTTPException(401, "missing or unknown API key (header X-API-Key)")
        if PROFILES_READ not in key.scopes:
            raise HTTPException(403, f"key {key.name!r} lacks scope {PROFILES_READ}")
        return key

    @app.get("/health")
    def health() -> dict:
        generation = reader.generation()
        return {"status": "ok", "snapshot_published_at": generation.published_at}

    @app.get("/v1/profiles/{identifier_type}/{identifier_value:path}")
    def profile(identifier_type: str, identifier_value: str, request: Request,
                key: Annotated[ApiKey, Depends(caller)],
                events: Annotated[int, Query(ge=0, le=MAX_EVENTS)] = 20) -> Response:
        accepted = (*identifier_types(), "customer_id")
        if identifier_type not in accepted:
            raise HTTPException(422, f"unknown identifier type {identifier_type!r}; one of "
                                + ", ".join(accepted))
        value = normalise_identifier(identifier_type, identifier_value)
        found = lookup(reader, identifier_type, value, pii=PII_READ in key.scopes, events=events)
        if found is None:
            raise HTTPException(404, NOT_FOUND)
        return Response(json.dumps(found, default=str), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    app.state.reader = reader
    return app
