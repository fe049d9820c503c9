"""HubSpot-style CRM: batch upsert/update of contacts by a unique property, on the HTTP sender."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from orchestration.activation.destinations import Batch, BatchResult, FieldType
from orchestration.activation.destinations.http import HttpSender, env_value, json_body

if TYPE_CHECKING:
    from orchestration.activation.config import HubspotDestination, SyncConfig

MAX_INPUTS = 100  # HubSpot's batch limit


def property_value(value: Any) -> str | None:
    """HubSpot properties are strings (booleans as 'true'/'false')."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class HubspotContacts(HttpSender):
    """POST {base_url}/crm/v3/objects/<type>/batch/{upsert,update} with
    {"inputs": [{"id": <id_property value>, "idProperty": ..., "properties": {...}}]}.

    207 answers list per-record errors with `context.ids`; those rows are rejected, the rest land.
    Deletions (consent revoked) become updates of `on_remove_properties` when configured."""

    def __init__(self, sync: "SyncConfig") -> None:
        super().__init__()
        self.sync = sync
        self.settings: HubspotDestination = sync.destination  # type: ignore[assignment]
        self.timeout_seconds = self.settings.timeout_seconds
        self.headers: dict[str, str] = {}

    def open(self, fields: list[FieldType]) -> None:
        token = env_value(self.settings.token_env, f"sync {self.sync.name} hubspot token")
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        self.start()

    def url(self, action: str) -> str:
        base = self.settings.base_url.rstrip("/")
        return f"{base}/crm/v3/objects/{self.settings.object_type}/batch/{action}"

    def write(self, batch: Batch) -> BatchResult:
        settings = self.settings
        result = BatchResult()
        removal = batch.operation in ("delete", "remove")
        if removal and not settings.on_remove_properties:
            for row in batch.rows:
                result.rejected[row.key] = ("HubSpot records are not deleted by this sync: set "
                                            "destination.on_remove_properties")
            return result
        inputs, key_by_id = [], {}
        for row in batch.rows:
            record_id = property_value(row.fields.get(settings.id_property))
            if not record_id:
                result.rejected[row.key] = f"{settings.id_property} is empty"
                continue
            key_by_id[record_id] = row.key
            if removal:
                properties = dict(settings.on_remove_properties)
            else:
                properties = {name: property_value(value) for name, value in row.fields.items()
                              if name != settings.id_property}
            inputs.append({"id": record_id, "idProperty": settings.id_property,
                           "properties": properties})
        action = "update" if batch.operation == "update" or removal else "upsert"
        for start in range(0, len(inputs), MAX_INPUTS):
            chunk = inputs[start:start + MAX_INPUTS]
            body = json.dumps({"inputs": chunk}, separators=(",", ":")).encode()
            response = self.post(self.url(action), body, self.headers)
            for error in json_body(response).get("errors") or []:
                ids = (error.get("context") or {}).get("ids") or []
                for record_id in ids:
                    if record_id in key_by_id:
                        result.rejected[key_by_id[record_id]] = str(
                            error.get("message") or error.get("category") or "rejected")
        return result

    def close(self) -> None:
        self.stop()
