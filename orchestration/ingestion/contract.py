"""The landing contract: every source the CDP accepts, its required columns and their types."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from orchestration.inputs.model import InputDeclaration

ColumnType = Literal["text", "timestamp", "number", "integer"]

_log = logging.getLogger(__name__)

# Limits of one landing file (docs/landing-contract.md, "Limits"), overridable by env vars.
MAX_COLUMNS_ENV = "CDP_LANDING_MAX_COLUMNS"
MAX_FIELD_BYTES_ENV = "CDP_LANDING_MAX_FIELD_BYTES"
DEFAULT_MAX_COLUMNS = 256
DEFAULT_MAX_FIELD_BYTES = 65_536


@dataclass(frozen=True)
class LandingLimits:
    """What one landing file may hold: columns in its header, UTF-8 bytes in one text value."""

    max_columns: int = DEFAULT_MAX_COLUMNS
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES

    @classmethod
    def from_env(cls) -> LandingLimits:
        """CDP_LANDING_MAX_COLUMNS and CDP_LANDING_MAX_FIELD_BYTES, else the defaults."""
        return cls(max_columns=_positive_int(MAX_COLUMNS_ENV, DEFAULT_MAX_COLUMNS),
                   max_field_bytes=_positive_int(MAX_FIELD_BYTES_ENV, DEFAULT_MAX_FIELD_BYTES))


def _positive_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class LandingSource:
    """One landing source: a file or folder of files named after `name` in the landing folder."""

    name: str
    dbt_source: str
    record_id: str
    required: tuple[str, ...]
    # Typed columns (required or optional); every other column is kept as text.
    types: dict[str, ColumnType] = field(default_factory=dict)
    optional: tuple[str, ...] = ()
    description: str = ""

    def column_type(self, column: str) -> ColumnType:
        return self.types.get(column, "text")

    @property
    def known_columns(self) -> tuple[str, ...]:
        return self.required + tuple(c for c in self.optional if c not in self.required)


SOURCES: tuple[LandingSource, ...] = (
    LandingSource(
        name="segment_identifies",
        dbt_source="segment",
        record_id="id",
        required=("id", "anonymous_id", "user_id", "timestamp", "email", "phone",
                  "first_name", "last_name"),
        optional=("received_at", "sent_at", "context_ip", "context_user_agent"),
        types={"timestamp": "timestamp", "received_at": "timestamp", "sent_at": "timestamp"},
        description="Segment/RudderStack identify calls: who a visitor says they are.",
    ),
    LandingSource(
        name="segment_tracks",
        dbt_source="segment",
        record_id="id",
        required=("id", "anonymous_id", "user_id", "event", "timestamp"),
        optional=("product_id", "revenue", "order_id", "received_at", "category", "price",
                  "quantity"),
        types={"timestamp": "timestamp", "received_at": "timestamp", "revenue": "number",
               "price": "number", "quantity": "number"},
        description="Segment/RudderStack track calls: named actions such as Product Added.",
    ),
    LandingSource(
        name="segment_pages",
        dbt_source="segment",
        record_id="id",
        required=("id", "anonymous_id", "user_id", "timestamp", "url", "path", "referrer",
                  "title"),
        optional=("received_at",),
        types={"timestamp": "timestamp", "received_at": "timestamp"},
        description="Segment/RudderStack page calls: web page views.",
    ),
    LandingSource(
        name="crm_contacts",
        dbt_source="crm",
        record_id="contact_id",
        required=("contact_id", "email", "phone", "first_name", "last_name", "city",
                  "country", "created_at", "updated_at"),
        types={"created_at": "timestamp", "updated_at": "timestamp"},
        description="CRM contacts export, one row per contact version.",
    ),
    LandingSource(
        name="shop_orders",
        dbt_source="shop",
        record_id="order_id",
        required=("order_id", "shop_customer_id", "email", "phone", "ordered_at",
                  "total_amount", "currency", "status"),
        # the billing name a checkout asks for (Shopify's "Billing Name", split): evidence that
        # two people share a mailbox or a landline
        optional=("first_name", "last_name"),
        types={"ordered_at": "timestamp", "total_amount": "number"},
        description="E-commerce orders, including guest checkouts without a shop_customer_id.",
    ),
    LandingSource(
        name="shop_order_lines",
        dbt_source="shop",
        record_id="line_id",
        required=("order_id", "line_id", "sku", "product_name", "category", "quantity",
                  "unit_price"),
        types={"quantity": "number", "unit_price": "number"},
        description="E-commerce order lines: one row per product on an order.",
    ),
    LandingSource(
        name="pos_transactions",
        dbt_source="pos",
        record_id="transaction_id",
        required=("transaction_id", "store_id", "loyalty_id", "transacted_at", "total_amount",
                  "currency"),
        types={"transacted_at": "timestamp", "total_amount": "number"},
        description="Store point-of-sale transactions, identified by loyalty card when scanned.",
    ),
    LandingSource(
        name="loyalty_members",
        dbt_source="loyalty",
        record_id="loyalty_id",
        required=("loyalty_id", "email", "phone", "first_name", "last_name", "tier",
                  "joined_at"),
        types={"joined_at": "timestamp"},
        description="Loyalty programme members.",
    ),
    LandingSource(
        name="email_events",
        dbt_source="email",
        record_id="event_id",
        required=("event_id", "email", "campaign_id", "event_type", "occurred_at"),
        types={"occurred_at": "timestamp"},
        description="Email service provider events: delivered, open, click, bounce, "
                    "unsubscribe, spam_report.",
    ),
    LandingSource(
        name="support_tickets",
        dbt_source="support",
        record_id="ticket_id",
        required=("ticket_id", "requester_email", "requester_phone", "channel", "status",
                  "created_at", "solved_at", "csat"),
        types={"created_at": "timestamp", "solved_at": "timestamp", "csat": "number"},
        description="Help-desk tickets with requester contact details and satisfaction score.",
    ),
    LandingSource(
        name="consents",
        dbt_source="consent",
        record_id="consent_id",
        required=("identifier_type", "identifier_value", "purpose", "status", "occurred_at",
                  "source"),
        optional=("consent_id",),
        types={"occurred_at": "timestamp"},
        description="Consent decisions (granted or denied) per identifier and purpose.",
    ),
    LandingSource(
        name="privacy_requests",
        dbt_source="privacy",
        record_id="request_id",
        required=("request_id", "identifier_type", "identifier_value", "request_type",
                  "received_at"),
        optional=("attribute", "new_value"),  # rectification requests only
        types={"received_at": "timestamp"},
        description="Data-subject requests: erasure, suppression, access or rectification.",
    ),
)

SOURCES_BY_NAME: dict[str, LandingSource] = {s.name: s for s in SOURCES}


def declared_inputs_or_problems() -> tuple[list[InputDeclaration], list[str]]:
    """The valid input declarations (inputs/*.yml, read now) and the problems of invalid ones.

    An invalid file does not hide the others, and a name declared again is kept from its first
    valid file only (`orchestration.inputs.validate_inputs`). Problems name the file and field."""
    from orchestration.inputs import validate_inputs

    loaded, problems = validate_inputs()
    return [item.declaration for item in loaded], problems


def landing_sources(warnings: list[str] | None = None) -> tuple[LandingSource, ...]:
    """The built-in SOURCES and the LandingSource of every valid declared landing input, read
    at call time. An invalid declaration is left out and warned about (logged, and appended to
    `warnings` when given) so the built-in sources still load."""
    declarations, problems = declared_inputs_or_problems()
    for problem in problems:
        message = f"input declaration not loaded: {problem}"
        _log.warning(message)
        if warnings is not None:
            warnings.append(message)
    declared = tuple(d.landing_source() for d in declarations if d.is_landing)
    return SOURCES + declared


def landing_source_named(name: str) -> LandingSource:
    """The built-in or declared landing source called `name`; KeyError if none is."""
    if name in SOURCES_BY_NAME:
        return SOURCES_BY_NAME[name]
    for source in landing_sources():
        if source.name == name:
            return source
    raise KeyError(f"no landing source {name!r} (built-in, or declared in inputs/*.yml)")


def warehouse_input_relation(declaration: InputDeclaration) -> str | None:
    """The relation a declared warehouse input (relation or dbt_source) reads: the catalog's
    dbt source `dbt_source_name.dbt_source_table` (generated by the compiler, or the user's),
    else the declared `database.schema.table`; None for a landing input or an unknown source."""
    from orchestration.catalog import CatalogError, catalog

    if declaration.is_landing:
        return None
    try:
        return catalog().source(declaration.dbt_source_name, declaration.dbt_source_table)
    except CatalogError:
        relation = declaration.from_.relation
        if relation is None:
            return None
        return ".".join(p for p in (relation.database, relation.schema_, relation.table) if p)
