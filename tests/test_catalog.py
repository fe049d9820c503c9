"""The catalog answers relation names and dbt vars from the parsed project, and names what is missing."""

import ast
import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from orchestration import churn, triggers
from orchestration.catalog import CatalogError, catalog
from orchestration.settings import PROFILES_DIR, PROJECT_DIR
from orchestration.warehouse.duckdb_engine import DuckDBWarehouse


def test_relations_come_from_the_manifest_schema() -> None:
    cat = catalog()
    node = cat.node("customers")
    assert cat.relation("customers") == f"{node['schema']}.{node['alias']}"
    assert cat.relation("customers").split(".")[0] == cat.schema_of("customer_identities")
    assert cat.relation("stg_privacy__requests").split(".")[0] != cat.schema_of("customers")


def test_vars_are_read_by_dotted_path_and_missing_names_are_named() -> None:
    cat = catalog()
    assert isinstance(cat.var("features.cart_event_names"), list)
    assert cat.var("features.no_such_var", default=None) is None
    with pytest.raises(CatalogError, match="features.no_such_var"):
        cat.var("features.no_such_var")
    with pytest.raises(CatalogError, match="no_such_model"):
        cat.relation("no_such_model")


# --- the copies of dbt rules the Python assets used to keep agree with dbt (issue 16) ------------
# The dbt models are compiled for real (target lint: an in-memory DuckDB, so nothing is
# incremental) and their SQL runs on tiny hand-made upstream tables in that database.

AS_OF = dt.date(2024, 6, 30)
AS_OF_AT = dt.datetime(2024, 7, 1)  # dbt's as_of_timestamp(): the end of the as-of day
COMPILED = ("int_customers_web_summarised", "int_customers_purchases_summarised")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("catalog_compile") / "target"
    env = {**os.environ, "CDP_AS_OF": AS_OF.isoformat()}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "compile", "--quiet", "--target", "lint",
         "--select", *COMPILED, "--project-dir", str(PROJECT_DIR),
         "--profiles-dir", str(PROFILES_DIR), "--target-path", str(target)],
        env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return {name: next(target.rglob(f"compiled/**/{name}.sql")).read_text() for name in COMPILED}


def _table(con: duckdb.DuckDBPyConnection, model: str, columns: str) -> str:
    relation = catalog().relation(model)
    con.execute(f"create schema if not exists {relation.split('.')[0]}")
    con.execute(f"create table {relation} ({columns})")
    return relation


def test_the_trigger_and_the_feature_count_the_same_cart_events(compiled: dict[str, str]) -> None:
    # One customer per event name: those of the dbt var, those the trigger used to list, and a
    # name no list has; written in the case a tracking plan may use.
    names = [*catalog().var("features.cart_event_names"), "cart_add", "add_to_cart",
             "Added To Cart", "product viewed"]
    at = AS_OF_AT - dt.timedelta(hours=2)
    customers = {f"c{n}": name for n, name in enumerate(names)}
    con = duckdb.connect()  # the database the compiled SQL names ("memory")
    tracks = _table(con, "stg_segment__tracks",
                    "track_id varchar, event_name varchar, occurred_at timestamp")
    pages = _table(con, "stg_segment__pages", "page_view_id varchar, occurred_at timestamp")
    records = _table(con, "int_source_records_assigned",
                     "customer_id varchar, source varchar, source_record_id varchar")
    con.executemany(f"insert into {tracks} values (?, ?, ?)",
                    [(f"t-{c}", name, at) for c, name in customers.items()])
    con.executemany(f"insert into {records} values (?, 'segment_tracks', ?)",
                    [(c, f"t-{c}") for c in customers])
    assert con.execute(f"select count(*) from {pages}").fetchone()[0] == 0
    counted = dict(con.execute(
        f"select customer_id, cart_adds_30d from ({compiled['int_customers_web_summarised']})"
    ).fetchall())
    # customer_events: a track's event_type is its lowercased name (customer_events.sql)
    events = _table(con, "customer_events", "customer_id varchar, event_id varchar, "
                                            "event_type varchar, occurred_at timestamp")
    con.executemany(f"insert into {events} values (?, ?, lower(?), ?)",
                    [(c, f"segment_tracks:t-{c}", name, at) for c, name in customers.items()])
    triggers.refresh_trigger_events(con, AS_OF_AT - dt.timedelta(seconds=1))
    fired = {row[0] for row in con.execute(
        f"select customer_id from {triggers.TABLE} where trigger_name = 'cart_abandoned_1h'"
    ).fetchall()}
    featured = {c for c, n in counted.items() if n}
    assert fired == featured
    assert len(featured) == len(catalog().var("features.cart_event_names")) + 1  # + "Added To Cart"
    assert not {c for c, name in customers.items() if name in ("cart_add", "product viewed")} & fired


def test_churn_window_features_agree_with_dbt_at_the_as_of_date(compiled: dict[str, str]) -> None:
    wh = DuckDBWarehouse(Path(":memory:"))
    con = wh.con
    transactions = _table(con, "int_transactions_attributed",
                          "transaction_id varchar, customer_id varchar, source_name varchar, "
                          "source_record_id varchar, channel varchar, transacted_at timestamp, "
                          "amount decimal(18, 2)")
    _table(con, "stg_shop__order_lines", "order_id varchar, category varchar, line_amount double")
    windows = catalog().var("features.windows_days")
    rows = []
    for n, days in enumerate(windows):  # on each window's edge, just inside and just outside
        for k, offset in enumerate((dt.timedelta(0), dt.timedelta(seconds=-1),
                                    dt.timedelta(days=1), dt.timedelta(hours=5))):
            rows.append((f"t{n}{k}", f"c{n}", "pos_transactions", f"t{n}{k}",
                         "store" if k % 2 else "online",
                         AS_OF_AT - dt.timedelta(days=days) - offset, 10.5 + k))
    con.executemany(f"insert into {transactions} values (?, ?, ?, ?, ?, ?, ?)", rows)
    dbt_side = con.execute(
        f"select * from ({compiled['int_customers_purchases_summarised']}) order by customer_id"
    ).df().set_index("customer_id")
    python_side = churn.features_at(wh, transactions, AS_OF_AT, None).set_index("customer_id")
    assert list(python_side.index) == list(dbt_side.index) == [f"c{n}" for n in range(len(windows))]
    compared = ["orders_total", "revenue_total",
                *(f"{kind}_{days}d" for days in windows for kind in ("orders", "revenue"))]
    assert set(compared) <= set(churn.feature_columns())
    for column in compared:
        assert list(python_side[column]) == [float(v) for v in dbt_side[column]], column


# --- no relation literal and no copy of a dbt var in the runtime package (issue 16) ---------------

# The landing contract is the loader's file interface (which columns a landing file must carry);
# its column lists overlap the identity var's keys because both name the same source columns, not
# because one copies a rule of the other. Issue 15 moves the contract into YAML declarations.
FILES_NOT_YET_ON_THE_CATALOG = frozenset({"orchestration/ingestion/contract.py"})
RELATION_LITERAL = re.compile(r"\bmain_(marts|staging|intermediate)\.")


@dataclass(frozen=True)
class VarValues:
    """What of dbt_project.yml vars a Python literal must not repeat.

    `phrases`: string leaves that are rules rather than names (an event name with a space, a
    pattern); single words and identifiers are left out, as every name a Python asset passes to
    the catalog (a source, a column) is one. `string_sets`: lists of strings and the key sets of
    mappings; a literal collection sharing two members with one is a copy. `number_lists`: lists
    of numbers; an equal literal collection is a copy."""

    phrases: dict[str, str]
    string_sets: list[tuple[frozenset[str], str]]
    number_lists: list[tuple[frozenset[float], str]]


def var_values(variables: Mapping[str, Any]) -> VarValues:
    found = VarValues({}, [], [])

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            if len(value) >= 2:
                found.string_sets.append((frozenset(map(str, value)), f"{path} (keys)"))
            for key, child in value.items():
                walk(child, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            if len(value) >= 2 and all(isinstance(v, str) for v in value):
                found.string_sets.append((frozenset(value), path))
            elif len(value) >= 2 and all(isinstance(v, int | float) for v in value):
                found.number_lists.append((frozenset(value), path))
            for n, child in enumerate(value):
                walk(child, f"{path}[{n}]")
        elif isinstance(value, str) and "{{" not in value and re.search(r"\s|[\^$\[\]]", value):
            found.phrases.setdefault(value, path)

    walk(variables, "")
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}


def copies_of_dbt(source: str, where: str, values: VarValues) -> list[str]:
    """Each relation literal and copy of a dbt var value in Python `source`, as `file:line: why`."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    problems = []
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                id(node) not in docstrings):
            if RELATION_LITERAL.search(node.value):
                problems.append(f"{line}: relation name {node.value!r} (use catalog().relation)")
            if node.value in values.phrases:
                problems.append(f"{line}: {node.value!r} is dbt var {values.phrases[node.value]}")
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) >= 2 and all(
                isinstance(e, ast.Constant) for e in node.elts):
            members = frozenset(e.value for e in node.elts)
            shared, path = max(((len(members & var_set), path)
                                for var_set, path in values.string_sets), default=(0, ""))
            if shared >= 2:  # the var it overlaps most
                problems.append(f"{line}: {sorted(map(str, members))} copies dbt var {path}")
            problems += [f"{line}: {sorted(members)} copies dbt var {path}"
                         for var_list, path in values.number_lists if members == var_list]
    return problems


def test_no_python_module_names_a_relation_or_copies_a_dbt_var() -> None:
    values = var_values(catalog().vars)
    problems = []
    for path in sorted((PROJECT_DIR / "orchestration").rglob("*.py")):
        where = path.relative_to(PROJECT_DIR).as_posix()
        if where not in FILES_NOT_YET_ON_THE_CATALOG:
            problems += copies_of_dbt(path.read_text(), where, values)
    assert not problems, "\n".join(problems)


def test_the_scan_finds_the_copies_issue_16_removed() -> None:
    # The copies as they were: the trigger's cart events, churn's windows, the API's identifier
    # types, a schema-qualified mart and a pattern; docstrings and names are not copies.
    before = '''
"""Reads main_marts.customers (a docstring says so)."""
CART_EVENTS = ("product added", "product_added", "cart_add", "add_to_cart")
WINDOWS_DAYS = (30, 90, 365)
IDENTIFIER_TYPES = ("email", "phone", "user_id", "anonymous_id", "loyalty_id")
EVENTS = "main_marts.customer_events"
SOURCE = "shop_orders"
HORIZONS = [90, 365]
'''
    problems = copies_of_dbt(before, "old.py", var_values(catalog().vars))
    assert sorted({int(p.split(":")[1]) for p in problems}) == [3, 4, 5, 6], problems
    text = "\n".join(problems)
    for why in ("'product added' is dbt var features.cart_event_names[0]",
                "copies dbt var features.cart_event_names", "copies dbt var features.windows_days",
                "copies dbt var identity.identifier_types (keys)", "use catalog().relation"):
        assert why in text, text
