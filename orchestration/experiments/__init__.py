"""Experiments on syncs: declaration, deterministic holdout/variant assignment, persisted in experiments.assignments."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Annotated, Literal

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestration.catalog import catalog
from orchestration.warehouse.base import Warehouse

SCHEMA = "experiments"
ASSIGNMENTS = f"{SCHEMA}.assignments"
HOLDOUT = "holdout"
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
_TS = pa.timestamp("us", tz="UTC")
# One row per experiment and customer id ever assigned; rows are only ever appended.
# inherited_from: the merged (retired) id whose assignment a surviving id took over.
ASSIGNMENTS_SCHEMA = pa.schema([
    ("experiment_id", pa.string()), ("customer_id", pa.string()), ("variant", pa.string()),
    ("bucket", pa.float64()), ("holdout_share", pa.float64()), ("conversion", pa.string()),
    ("window_days", pa.int64()), ("assigned_at", _TS), ("window_ends_at", _TS),
    ("inherited_from", pa.string())])


class ExperimentConfig(BaseModel):
    """`experiment:` on a sync: who is held out, which variant the others get, how it is measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=IDENTIFIER)]
    holdout_share: float = Field(gt=0, lt=1)
    # shares of the treated (non-holdout) customers; they must add up to 1
    variants: dict[Annotated[str, Field(pattern=IDENTIFIER)], float] = {"treatment": 1.0}
    conversion: Literal["purchase", "revenue"] = "purchase"
    window_days: int = Field(30, ge=1, le=3650)
    # the destination field carrying the variant (omit: the variant is not sent)
    variant_field: Annotated[str, Field(pattern=IDENTIFIER)] | None = None

    @model_validator(mode="after")
    def shares_add_up(self) -> "ExperimentConfig":
        if HOLDOUT in self.variants:
            raise ValueError(f"variant name {HOLDOUT!r} is reserved for the holdout")
        if any(share <= 0 for share in self.variants.values()):
            raise ValueError("every variant share must be > 0")
        if abs(sum(self.variants.values()) - 1) > 1e-9:
            raise ValueError(f"variant shares must add up to 1, they add up to "
                             f"{sum(self.variants.values()):g}")
        return self


def bucket(experiment_id: str, customer_id: str) -> float:
    """A uniform number in [0, 1) fixed by (experiment id, customer id): the first 15 hex digits
    of md5('<experiment_id>:<customer_id>') over 16**15."""
    digest = hashlib.md5(f"{experiment_id}:{customer_id}".encode()).hexdigest()
    return int(digest[:15], 16) / 16 ** 15


def variant_of(experiment: ExperimentConfig, value: float) -> str:
    """The holdout below `holdout_share`, else the variant whose cumulative share covers the rest."""
    if value < experiment.holdout_share:
        return HOLDOUT
    position = (value - experiment.holdout_share) / (1 - experiment.holdout_share)
    cumulative = 0.0
    for name, share in experiment.variants.items():
        cumulative += share
        if position < cumulative:
            return name
    return list(experiment.variants)[-1]


def _existing(wh: Warehouse, experiment_id: str) -> dict[str, tuple[str, dt.datetime]]:
    if not wh.exists(ASSIGNMENTS):
        return {}
    return {customer: (variant, assigned_at) for customer, variant, assigned_at in wh.rows(
        f"select customer_id, variant, assigned_at from {ASSIGNMENTS}"
        " where experiment_id = %(id)s", {"id": experiment_id})}


def _merged_into(wh: Warehouse) -> dict[str, list[str]]:
    """Surviving customer id -> the retired ids merged into it (marts customer_id_merges)."""
    try:
        relation = catalog().relation("customer_id_merges")
    except KeyError:
        return {}
    if not wh.exists(relation):
        return {}
    survivors: dict[str, list[str]] = {}
    for old, current in wh.rows(f"select old_customer_id, current_customer_id from {relation}"):
        survivors.setdefault(str(current), []).append(str(old))
    return survivors


def assign(wh: Warehouse, experiment: ExperimentConfig, customer_ids: list[str],
           persist: bool = True, now: dt.datetime | None = None) -> dict[str, str]:
    """The variant of every given customer id. A customer keeps its first assignment for ever.
    A new id that survived merges (customer_id_merges) takes the assignment of the earliest
    assigned of its merged ids; only an id with neither is assigned by its hash bucket. New
    assignments are appended to experiments.assignments unless `persist` is false (preview)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    existing = _existing(wh, experiment.id)
    survivors = _merged_into(wh) if any(c not in existing for c in customer_ids) else {}
    result: dict[str, str] = {}
    new_rows: list[dict[str, object]] = []
    for customer in dict.fromkeys(customer_ids):
        if customer in existing:
            result[customer] = existing[customer][0]
            continue
        merged = sorted((existing[old][1], old) for old in survivors.get(customer, [])
                        if old in existing)
        value = bucket(experiment.id, customer)
        variant = existing[merged[0][1]][0] if merged else variant_of(experiment, value)
        result[customer] = variant
        new_rows.append({"experiment_id": experiment.id, "customer_id": customer,
                         "variant": variant, "bucket": value,
                         "holdout_share": experiment.holdout_share,
                         "conversion": experiment.conversion,
                         "window_days": experiment.window_days, "assigned_at": now,
                         "window_ends_at": now + dt.timedelta(days=experiment.window_days),
                         "inherited_from": merged[0][1] if merged else None})
    if persist and new_rows:
        wh.ensure_schema(SCHEMA)
        wh.append(ASSIGNMENTS, pa.Table.from_pandas(pd.DataFrame(new_rows),
                                                    schema=ASSIGNMENTS_SCHEMA,
                                                    preserve_index=False))
    return result
