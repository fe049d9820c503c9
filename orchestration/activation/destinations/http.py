"""HTTP/webhook destination: JSON batches with auth, HMAC-SHA256 signature and idempotency key."""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import json
import os
from typing import TYPE_CHECKING, Any

import requests

from orchestration.activation.destinations import (
    Batch,
    BatchRejected,
    BatchResult,
    DestinationError,
    FieldType,
    TransientError,
)

if TYPE_CHECKING:
    from orchestration.activation.config import HttpDestination, SyncConfig

FATAL_STATUSES = {401, 403, 404, 405, 410}


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def env_value(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise DestinationError(f"{what}: environment variable {name} is not set")
    return value


class HttpSender:
    """POSTs JSON and turns HTTP statuses into retry, reject or fatal outcomes."""

    timeout_seconds: float = 30.0

    def __init__(self) -> None:
        self.session: requests.Session | None = None

    def start(self) -> None:
        self.session = requests.Session()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        assert self.session is not None, "open() first"
        try:
            response = self.session.post(url, data=body, headers=headers,
                                         timeout=self.timeout_seconds)
        except requests.Timeout as exc:
            raise TransientError(f"POST {url} timed out after {self.timeout_seconds}s") from exc
        except requests.ConnectionError as exc:
            raise TransientError(f"POST {url} failed to connect: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500 or status == 408:
            raise TransientError(
                f"POST {url} answered {status} {response.reason}: {response.text[:200]}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if status in FATAL_STATUSES:
            raise DestinationError(
                f"POST {url} answered {status} {response.reason}: {response.text[:200]}")
        if 400 <= status < 500:
            raise BatchRejected(f"{status} {response.reason}: {response.text[:300]}")
        return response

    def stop(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


def json_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class HttpWebhook(HttpSender):
    """Body: {"sync", "operation", "batch_id", "rows": [{"key", "fields", "previous"?}]}.

    A 2xx answer acknowledges every row except those listed as {"errors": [{"key", "reason"}]};
    429, 408 and 5xx are retried; other 4xx refuse the batch (it is split to find bad rows)."""

    def __init__(self, sync: "SyncConfig") -> None:
        super().__init__()
        self.sync = sync
        self.settings: HttpDestination = sync.destination  # type: ignore[assignment]
        self.timeout_seconds = self.settings.timeout_seconds
        self.headers: dict[str, str] = {}
        self.secret: bytes | None = None

    def open(self, fields: list[FieldType]) -> None:
        where = f"sync {self.sync.name} destination"
        self.headers = {"Content-Type": "application/json", **self.settings.headers}
        if self.settings.auth:
            auth = self.settings.auth
            self.headers[auth.header] = auth.prefix + env_value(auth.env, where + ".auth")
        if self.settings.hmac:
            self.secret = env_value(self.settings.hmac.secret_env, where + ".hmac").encode()
        self.start()

    def body(self, batch: Batch) -> dict[str, Any]:
        rows = []
        for row in batch.rows:
            item: dict[str, Any] = {"key": row.key, "fields": row.fields}
            if row.previous is not None and batch.operation not in ("delete", "remove"):
                item["previous"] = row.previous
            rows.append(item)
        return {"sync": batch.sync, "operation": batch.operation,
                "batch_id": batch.idempotency_key, "rows": rows}

    def write(self, batch: Batch) -> BatchResult:
        body = json.dumps(self.body(batch), separators=(",", ":"), default=str).encode()
        headers = dict(self.headers)
        headers[self.settings.idempotency_header] = batch.idempotency_key
        if self.secret is not None and self.settings.hmac:
            headers[self.settings.hmac.header] = sign(self.secret, body)
        response = self.post(self.settings.url, body, headers)
        keys = {row.key for row in batch.rows}
        rejected = {}
        for error in json_body(response).get("errors") or []:
            key = str(error.get("key"))
            if key in keys:
                rejected[key] = str(error.get("reason") or "rejected by destination")
        return BatchResult(rejected=rejected)

    def close(self) -> None:
        self.stop()
