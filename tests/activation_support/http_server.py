"""A real HTTP destination on 127.0.0.1 that can throttle, fail, hang and reject single rows."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Behaviour:
    """What the server does. `script` is consumed one entry per request before normal handling:
    "429" or "429:<retry-after>", "500", "503:<retry-after>", "hang", "401"."""

    script: list[str] = field(default_factory=list)
    reject_keys: set[str] = field(default_factory=set)  # answered 200 with a per-row error
    refuse_keys: set[str] = field(default_factory=set)  # any such row: whole batch gets 422
    hang_seconds: float = 2.0
    expected_token: str | None = None  # Authorization: Bearer <token>
    hmac_secret: bytes | None = None
    on_request: Callable[[dict[str, Any]], None] | None = None  # called before answering


class DestinationState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.behaviour = Behaviour()
        self.requests: list[dict[str, Any]] = []  # every request that reached the handler
        self.seen_batches: set[str] = set()  # idempotency keys applied
        self.records: dict[str, dict[str, Any]] = {}  # key -> current fields (upserted)
        self.members: set[str] = set()
        self.applied: Counter[str] = Counter()  # key -> times applied (after idempotency)
        self.problems: list[str] = []  # request-shape violations seen by the server

    def apply(self, operation: str, key: str, fields: dict[str, Any]) -> None:
        self.applied[key] += 1
        if operation in ("delete", "remove"):
            self.records.pop(key, None)
            self.members.discard(key)
        elif operation == "add":
            self.members.add(key)
            self.records[key] = fields
        else:
            self.records[key] = fields


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "LocalDestination"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return None

    def reply(self, status: int, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        state = self.server.state
        body = json.loads(raw or b"{}")
        request = {"path": self.path, "headers": dict(self.headers.items()), "body": body}
        with state.lock:
            state.requests.append(request)
            behaviour = state.behaviour
            action = behaviour.script.pop(0) if behaviour.script else ""
        if behaviour.on_request is not None:
            behaviour.on_request(request)
        if action == "hang":
            time.sleep(behaviour.hang_seconds)
            self.close_connection = True
            return
        if action:
            code, _, retry_after = action.partition(":")
            self.reply(int(code), {"message": "scripted failure"},
                       {"Retry-After": retry_after} if retry_after else None)
            return
        if behaviour.expected_token is not None and (
                self.headers.get("Authorization") != f"Bearer {behaviour.expected_token}"):
            self.reply(401, {"message": "bad token"})
            return
        if behaviour.hmac_secret is not None:
            expected = "sha256=" + hmac.new(behaviour.hmac_secret, raw, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(self.headers.get("X-CDP-Signature", ""), expected):
                self.reply(401, {"message": "bad signature"})
                return
        if self.path.startswith("/crm/v3/objects/"):
            self.hubspot(body)
        else:
            self.webhook(body)

    def webhook(self, body: dict[str, Any]) -> None:
        state = self.server.state
        behaviour = state.behaviour
        rows = body["rows"]
        if any(row["key"] in behaviour.refuse_keys for row in rows):
            self.reply(422, {"message": "batch refused: a row failed validation"})
            return
        batch_id = self.headers.get("Idempotency-Key", "")
        errors = [{"key": row["key"], "reason": f"invalid record {row['key']}"}
                  for row in rows if row["key"] in behaviour.reject_keys]
        bad = {e["key"] for e in errors}
        with state.lock:
            if batch_id not in state.seen_batches:  # a replayed batch is acknowledged, not re-applied
                state.seen_batches.add(batch_id)
                for row in rows:
                    if row["key"] not in bad:
                        state.apply(body["operation"], row["key"], row["fields"])
        self.reply(200, {"errors": errors})

    def hubspot(self, body: dict[str, Any]) -> None:
        """Checks the shape of HubSpot's batch upsert/update of contacts and answers like it."""
        state = self.server.state
        behaviour = state.behaviour
        inputs = body.get("inputs")
        problems = []
        if set(body) != {"inputs"} or not isinstance(inputs, list) or not 1 <= len(inputs) <= 100:
            problems.append("body must be {'inputs': [1..100 items]}")
        for item in inputs or []:
            if set(item) - {"id", "idProperty", "properties"} or not isinstance(item.get("id"), str):
                problems.append(f"bad input {item}")
            elif item.get("idProperty") != "email" or not isinstance(item.get("properties"), dict):
                problems.append(f"bad input {item}")
            elif any(not isinstance(v, str) for v in item["properties"].values() if v is not None):
                problems.append(f"property values must be strings: {item}")
        if problems:
            with state.lock:
                state.problems.extend(problems)
            self.reply(400, {"status": "error", "category": "VALIDATION_ERROR",
                             "message": "; ".join(problems)})
            return
        errors, results = [], []
        with state.lock:
            for item in inputs:
                if item["id"] in behaviour.reject_keys:
                    errors.append({"status": "error", "category": "VALIDATION_ERROR",
                                   "message": f"Property values were not valid for {item['id']}",
                                   "context": {"ids": [item["id"]]}})
                    continue
                operation = "update" if self.path.endswith("/update") else "upsert"
                state.apply(operation, item["id"], item["properties"])
                results.append({"id": str(abs(hash(item["id"])) % 10**9),
                                "properties": item["properties"]})
        body_out: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            body_out.update(errors=errors, numErrors=len(errors))
        self.reply(207 if errors else 200, body_out)


class LocalDestination(ThreadingHTTPServer):
    """Start with `with LocalDestination() as server:`; `server.url` is the base address."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = DestinationState()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "LocalDestination":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
