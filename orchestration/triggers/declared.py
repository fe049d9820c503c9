"""Declared trigger audiences: the YAML form (triggers/*.yml), its validation, and its SQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestration.catalog import catalog
from orchestration.declarations import field_errors, read_yaml, sql_literal, template_problems
from orchestration.segments.grammar import NAME_PATTERN, parse_window
from orchestration.settings import PROJECT_DIR

TRIGGERS_DIR = PROJECT_DIR / "triggers"
TODAY = "today"
_HOURS = {"minute": 1 / 60, "hour": 1, "day": 24}


class TriggerError(ValueError):
    """A trigger file is invalid; the message names the file, the trigger and the field."""


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(sql_literal(v) for v in values) + ")"


def purchase_condition() -> str:
    """SQL over customer_events (event_id, event_type): the event is a purchase by the dbt purchase
    rule (int_transactions_identified): a store transaction, or a shop order whose status is not in
    var features.excluded_order_statuses (customer_events names it `order_<status>`, `order_placed`
    without a status). A tracked "Order Completed" is web telemetry, not a purchase, as for the
    features."""
    excluded = tuple(f"order_{str(status).lower()}"
                     for status in catalog().var("features.excluded_order_statuses"))
    return ("(event_id like 'pos_transactions:%' or "
            f"(event_id like 'shop_orders:%' and event_type not in {_in(excluded)}))")


class EventMatch(BaseModel):
    """Which events of customer_events count, by exactly one of: `event` (event_type values as
    customer_events stores them, lowercased), `event_var` (a dbt var holding that list, e.g.
    features.cart_event_names) or `purchase: true` (the dbt purchase rule)."""

    model_config = ConfigDict(extra="forbid")
    event: str | list[str] | None = None
    event_var: str | None = None
    purchase: bool | None = None

    @field_validator("event")
    @classmethod
    def literal_names(cls, event: str | list[str] | None) -> str | list[str] | None:
        for name in [event] if isinstance(event, str) else (event or []):
            sql_literal(name)  # raises for what cannot be a portable literal
            if not name.strip():
                raise ValueError("an event name is empty")
        if isinstance(event, list) and not event:
            raise ValueError("the list of event names is empty")
        return event

    @field_validator("event_var")
    @classmethod
    def known_var(cls, name: str | None) -> str | None:
        if name is not None:
            try:
                value = catalog().var(name)
            except Exception as exc:  # the catalog says why (unknown var, no manifest)
                raise ValueError(f"dbt var {name!r}: {exc}") from exc
            if not isinstance(value, list) or not value or not all(
                    isinstance(v, str) for v in value):
                raise ValueError(f"dbt var {name!r} is not a non-empty list of event names")
        return name

    @model_validator(mode="after")
    def exactly_one(self) -> "EventMatch":
        given = [key for key in ("event", "event_var", "purchase") if getattr(self, key)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of event, event_var or `purchase: true`, got "
                             f"{given or 'none'}")
        return self

    def names(self) -> tuple[str, ...]:
        if self.event_var:
            return tuple(str(v).lower() for v in catalog().var(self.event_var))
        names = [self.event] if isinstance(self.event, str) else self.event or []
        return tuple(name.strip().lower() for name in names)  # as customer_events spells them

    def condition(self) -> str:
        """SQL over an events relation (event_id, event_type)."""
        return purchase_condition() if self.purchase else f"event_type in {_in(self.names())}"


class Trigger(BaseModel):
    """One trigger: it fires for a customer whose qualifying entering event is at least `dwell`
    old, within `lookback` (a window, `today`, or CDP_TRIGGER_LOOKBACK_HOURS), with no `exit`
    event at or after it. once_per `episode`: the latest entering event (a newer one is a new
    episode); `customer`: the first ever entering event, so it fires once per customer."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    description: str = Field(min_length=1)
    enter: EventMatch
    exit: EventMatch | None = None
    dwell: str | None = None
    lookback: str | None = None
    once_per: Literal["episode", "customer"] = "episode"

    @field_validator("dwell")
    @classmethod
    def known_dwell(cls, window: str | None) -> str | None:
        if window is not None:
            parse_window(window)
        return window

    @field_validator("lookback")
    @classmethod
    def known_lookback(cls, window: str | None) -> str | None:
        if window is not None and window != TODAY:
            try:
                parse_window(window)
            except ValueError as exc:
                raise ValueError(f"{exc}, or `{TODAY}`") from None
        return window

    def params(self, now: dt.datetime, lookback_hours: float) -> dict[str, dt.datetime]:
        """This trigger's time parameters for its SQL: the latest entering time the dwell allows
        and the start of the look-back window."""
        found = {f"{self.name}__dwell_until": now - _delta(self.dwell)}
        if self.lookback != TODAY:
            hours = lookback_hours if self.lookback is None else _hours(self.lookback)
            found[f"{self.name}__lookback_start"] = now - dt.timedelta(hours=hours)
        return found

    def sql(self) -> list[str]:
        """CTEs (`<name>_entries`, `<name>_exits`, `<name>`) over the CTE `events`; the last
        one has the columns of a firing."""
        order = "asc" if self.once_per == "customer" else "desc"
        episode = "e.customer_id" if self.once_per == "customer" else "e.event_id"
        triggered = "e.occurred_at"
        if self.dwell:
            datepart, amount = parse_window(self.dwell)
            triggered += f" + interval '{amount}' {datepart}"
        window = ("cast(e.occurred_at as date) = cast(%(now)s as date)" if self.lookback == TODAY
                  else f"e.occurred_at >= %({self.name}__lookback_start)s")
        enter = self.enter.condition().replace("%", "%%")  # pyformat: a literal % is %%
        ctes = [f"""{self.name}_entries as (
            select customer_id, event_id, occurred_at,
                row_number() over (
                    partition by customer_id order by occurred_at {order}, event_id {order}
                ) as entry_rank
            from events
            where {enter}
        )"""]
        exit_clause = ""
        if self.exit is not None:
            ctes.append(f"""{self.name}_exits as (
            select customer_id, occurred_at from events
            where {self.exit.condition().replace("%", "%%")}
        )""")
            exit_clause = f"""
              and not exists (
                  select 1 from {self.name}_exits as x
                  where x.customer_id = e.customer_id and x.occurred_at >= e.occurred_at)"""
        ctes.append(f"""{self.name} as (
            select
                {sql_literal(self.name)} as trigger_name,
                e.customer_id,
                {episode} as episode_key,
                {triggered} as triggered_at,
                e.occurred_at as source_event_at
            from {self.name}_entries as e
            where e.entry_rank = 1
              and e.occurred_at <= %({self.name}__dwell_until)s
              and {window}{exit_clause}
        )""")
        return ctes


def _delta(window: str | None) -> dt.timedelta:
    return dt.timedelta(hours=_hours(window)) if window else dt.timedelta(0)


def _hours(window: str) -> float:
    datepart, amount = parse_window(window)
    return amount * _HOURS[datepart]


def parse_triggers(raw: Any, path: Path) -> list[Trigger]:
    """The triggers of one file's parsed YAML (`triggers: [...]`); TriggerError naming the file,
    the trigger and the field for every problem."""
    if not isinstance(raw, dict) or not isinstance(raw.get("triggers"), list):
        raise TriggerError(f"{path}: expected a mapping with a `triggers:` list")
    found, errors = [], []
    for index, entry in enumerate(raw["triggers"]):
        label = (f"trigger {entry['name']}" if isinstance(entry, dict)
                 and isinstance(entry.get("name"), str) else f"triggers[{index}]")
        problems = template_problems(entry)
        if not problems:
            try:
                found.append(Trigger.model_validate(entry))
            except ValidationError as exc:
                problems = field_errors(exc)
        errors += [f"{path}: {label}: {problem}" for problem in problems]
    if errors:
        raise TriggerError("\n".join(errors))
    return found


def load_triggers(directory: Path = TRIGGERS_DIR) -> list[Trigger]:
    """Every trigger declared in `directory`/*.yml; names are unique across the files."""
    triggers: list[Trigger] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yml")):
        raw, error = read_yaml(path)
        if error:
            raise TriggerError(error)
        for trigger in parse_triggers(raw, path):
            if trigger.name in seen:
                raise TriggerError(f"{path}: trigger {trigger.name}: name: already declared in "
                                   f"{seen[trigger.name]}")
            seen[trigger.name] = path
            triggers.append(trigger)
    if not triggers:
        raise TriggerError(f"{directory}: no trigger declared (*.yml with a `triggers:` list)")
    return triggers
