"""SQL compilation of segment conditions and the generated dbt models (members, definitions)."""

from __future__ import annotations

from collections.abc import Sequence

from orchestration.declarations import sql_literal
from orchestration.segments.grammar import (COMPARISONS, All, Any_, ColumnKind, Condition,
                                            EventRule, LoadedSegment, Not, Scalar, parse_window)
from orchestration.segments.validation import EVENTS_MODEL, INPUTS_MODEL
from orchestration.settings import PROJECT_DIR

EVALUATION_DIR = PROJECT_DIR / "models" / "marts" / "segments" / "evaluation"
COMPILED_MODEL = EVALUATION_DIR / "int_segment_members_evaluated.sql"
DEFINITIONS_MODEL = PROJECT_DIR / "models" / "intermediate" / "segments" / "int_segment_definitions.sql"


def _literal(value: Scalar) -> str:
    """An escaped SQL literal; values were validated, so a refusal here is a bug, not input."""
    return sql_literal(value)


def _typed_literal(value: Scalar, kind: ColumnKind) -> str:
    if kind == "timestamp":
        return f"cast({_literal(str(value))} as timestamp)"
    return _literal(value)


def compile_condition(condition: Condition, columns: dict[str, ColumnKind], indent: int = 0) -> str:
    """Portable SQL (with dbt Jinja for date arithmetic) for one condition over `inputs`.

    With `indent` > 0 the SQL is laid out one rule per line (sqlfluff style) for the generated
    model; without, it is one line. A rule on a NULL value does not match; `not` of it does.
    """
    pad, inner = "\n" + " " * indent, "\n" + " " * (indent + 4)
    if isinstance(condition, (All, Any_)):
        children = condition.all if isinstance(condition, All) else condition.any
        keyword = "and" if isinstance(condition, All) else "or"
        if len(children) == 1:
            return compile_condition(children[0], columns, indent)
        if indent:
            parts = [compile_condition(c, columns, indent + 4) for c in children]
            return "(" + inner + (inner + keyword + " ").join(parts) + pad + ")"
        return "(" + f" {keyword} ".join(compile_condition(c, columns) for c in children) + ")"
    if isinstance(condition, Not):
        child = compile_condition(condition.not_, columns, indent + 4 if indent else 0)
        if indent:
            return "not coalesce(" + inner + child + "," + inner + "false" + pad + ")"
        return f"not coalesce({child}, false)"
    if isinstance(condition, EventRule):
        return compile_event(condition, indent)
    rule, column = condition, f"inputs.{condition.column}"
    kind = columns[rule.column]
    if rule.op in COMPARISONS:
        return f"{column} {COMPARISONS[rule.op]} {_typed_literal(rule.value, kind)}"
    if rule.op in ("in", "not_in"):
        values = ", ".join(_literal(v) for v in rule.value)
        return f"{column} {'not in' if rule.op == 'not_in' else 'in'} ({values})"
    if rule.op == "between":
        low, high = rule.value
        return f"{column} between {_literal(low)} and {_literal(high)}"
    if rule.op == "is_null":
        return f"{column} is null"
    if rule.op == "is_not_null":
        return f"{column} is not null"
    if rule.op == "is_true":
        return f"{column} = true"
    if rule.op == "is_false":
        return f"{column} = false"
    since = f"{{{{ dbt.dateadd('day', -{int(rule.value)}, as_of_timestamp()) }}}}"
    if rule.op == "within_last_days":
        return f"{column} >= {since}"
    return f"{column} < {since}"  # not_within_last_days


def _since(window: str) -> str:
    datepart, amount = parse_window(window)
    return f"{{{{ dbt.dateadd('{datepart}', -{amount}, as_of_timestamp()) }}}}"


def _event_filters(rule: EventRule, window: str | None) -> list[str]:
    """The predicates picking the customer's matching events: the event name as customer_events
    stores it (a track's name lowercased, so `Product Added` and `product added` match alike; a
    built-in type such as `page_view` is already lowercase), `where`, and the window before the
    as-of time (exclusive bound, as the inputs model counts)."""
    filters = ["events.customer_id = inputs.customer_id",
               f"events.event_type = lower({_literal(rule.event)})",
               "events.occurred_at < {{ as_of_timestamp() }}"]
    if window is not None:
        filters.append(f"events.occurred_at >= {_since(window)}")
    for column, value in sorted(rule.where.items()):
        if isinstance(value, list):
            filters.append(f"events.{column} in ({', '.join(_literal(v) for v in value)})")
        else:
            filters.append(f"events.{column} = {_literal(value)}")
    return filters


def _subquery(select: str, filters: list[str], indent: int) -> str:
    if not indent:
        return f"(select {select} from events where {' and '.join(filters)})"
    pad = " " * indent
    body = f"\n{pad}        and ".join(filters)
    return (f"(\n{pad}    select {select}\n{pad}    from events\n{pad}    where\n"
            f"{pad}        {body}\n{pad})")


def compile_event(rule: EventRule, indent: int = 0) -> str:
    """An event rule as correlated subqueries over the `events` CTE (customer_events), which
    DuckDB, PostgreSQL and Spark all plan: a count, a sum or an existence test."""
    if rule.none:
        return "not exists " + _subquery("1", _event_filters(rule, rule.within), indent)
    if rule.last_within:
        return "exists " + _subquery("1", _event_filters(rule, rule.last_within), indent)
    if rule.not_within:
        inner = indent + 4 if indent else 0
        ever = "exists " + _subquery("1", _event_filters(rule, None), inner)
        recent = "not exists " + _subquery("1", _event_filters(rule, rule.not_within), inner)
        if not indent:
            return f"({ever} and {recent})"
        return f"(\n{' ' * inner}{ever}\n{' ' * inner}and {recent}\n{' ' * indent})"
    if rule.sum is not None:
        (op, value), = rule.comparisons().items()
        total = _subquery(f"coalesce(sum(events.{rule.sum}), 0)", _event_filters(rule, rule.within),
                          indent)
        return f"{total} {COMPARISONS[op]} {_literal(value)}"
    count = _subquery("count(*)", _event_filters(rule, rule.within), indent)
    if rule.at_least is None and rule.at_most is None:
        return f"{count} >= 1"
    parts = []
    if rule.at_least is not None:
        parts.append(f"{count} >= {rule.at_least}")
    if rule.at_most is not None:
        parts.append(f"{count} <= {rule.at_most}")
    joiner = f"\n{' ' * indent}and " if indent else " and "
    return parts[0] if len(parts) == 1 else "(" + joiner.join(parts) + ")"


def uses_events(condition: Condition) -> bool:
    if isinstance(condition, EventRule):
        return True
    if isinstance(condition, (All, Any_)):
        return any(uses_events(c) for c in (condition.all if isinstance(condition, All)
                                            else condition.any))
    return isinstance(condition, Not) and uses_events(condition.not_)


def _where_clause(condition: Condition, columns: dict[str, ColumnKind]) -> str:
    """`where` and the condition, a top-level `all` as one rule per line."""
    if isinstance(condition, All) and len(condition.all) > 1:
        rules = [compile_condition(c, columns, 8) for c in condition.all]
        return "    where\n        " + "\n        and ".join(rules)
    return "    where\n        " + compile_condition(condition, columns, 8)


def _fit_line(line: str) -> str:
    """Generated lines longer than the lint limit (long descriptions) are exempted explicitly."""
    return line + "  -- noqa: LT05" if len(line) > 100 else line


HEADER = """-- grain: {grain}
-- GENERATED by `python -m orchestration.segments compile` from segments/*.yml: do not edit.
"""


def render_members_model(segments: Sequence[LoadedSegment], columns: dict[str, ColumnKind]) -> str:
    """The dbt model evaluating every segment: one row per (segment_name, customer_id)."""
    parts = [HEADER.format(grain="one row per segment_name and customer_id currently in it"),
             "with inputs as (",
             f"    select * from {{{{ ref('{INPUTS_MODEL}') }}}}",
             "),",
             "",
             "consents as (",
             "    select * from {{ ref('int_customers_consents_decided') }}",
             "),",
             ""]
    if any(uses_events(item.segment.condition) for item in segments):
        parts += ["events as (", f"    select * from {{{{ ref('{EVENTS_MODEL}') }}}}", "),", ""]
    selects = []
    for item in segments:
        segment = item.segment
        lines = [
            "    select",
            f"        {_literal(segment.name)} as segment_name,",
            "        inputs.customer_id",
            "    from inputs",
        ]
        if segment.consent_purpose:
            lines += [
                "    inner join consents",
                "        on",
                "            inputs.customer_id = consents.customer_id",
                f"            and consents.purpose = {_literal(segment.consent_purpose)}",
                "            and consents.is_granted",
            ]
        lines.append(_where_clause(segment.condition, columns))
        selects.append("\n".join(lines))
    if not selects:
        selects.append("    select\n        cast(null as {{ dbt.type_string() }}) as segment_name,\n"
                       "        inputs.customer_id\n    from inputs\n    where 1 = 0")
    parts += ["members as (", "\n    union all\n".join(selects), "),", "",
              "final as (", "    select distinct", "        segment_name,", "        customer_id",
              "    from members", ")", "", "select * from final", ""]
    return "\n".join(parts)


def render_definitions_model(segments: Sequence[LoadedSegment], columns: dict[str, ColumnKind]) -> str:
    """The dbt model listing every declared segment (name, description, owner, consent, rule)."""
    rows = []
    for item in segments:
        segment = item.segment
        rule = compile_condition(segment.condition, columns).replace("{{", "{ {").replace("}}", "} }")
        rows.append("\n".join([
            "    select",
            f"        {_literal(segment.name)} as segment_name,",
            f"        {_literal(' '.join(segment.description.split()))} as segment_description,",
            f"        {_literal(segment.owner)} as segment_owner,",
            f"        {_literal(segment.consent_purpose) if segment.consent_purpose else 'cast(null as {{ dbt.type_string() }})'}"
            " as consent_purpose,",
            f"        {_literal(rule)} as condition_sql,",
            f"        {_literal(item.path.relative_to(PROJECT_DIR).as_posix() if item.path.is_relative_to(PROJECT_DIR) else item.path.name)}"
            " as declared_in",
        ]))
    body = "\n    union all\n".join(rows)
    body = "\n".join(_fit_line(line) for line in body.splitlines())
    return "\n".join([HEADER.format(grain="one row per declared segment (segment_name)"),
                      "with declared as (", body, "),", "", "final as (",
                      "    select * from declared", ")", "", "select * from final", ""])
