"""Small warehouse fixtures for activation tests: customers, consents, a config from dicts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from orchestration.activation.config import ActivationConfig, parse_config

CUSTOMERS_DDL = """
create schema if not exists main_marts;
create or replace table main_marts.customers (
    customer_id varchar, email varchar, phone varchar, first_name varchar, city varchar,
    lifetime_value decimal(12, 2), first_seen date
)"""
CONSENTS_DDL = """
create schema if not exists main_marts;
create or replace table main_marts.customer_consents (
    customer_id varchar, purpose varchar, consent_status varchar,
    decided_at timestamp with time zone
)"""


def make_customers(con: duckdb.DuckDBPyConnection, n: int) -> None:
    con.execute(CUSTOMERS_DDL)
    con.execute("""
        insert into main_marts.customers
        select 'c' || lpad(cast(i as varchar), 6, '0'), 'user' || i || '@example.com',
            '+447' || cast(123456789 + i * 7919 as varchar), 'Name' || i, 'City' || (i % 7),
            cast(i * 1.5 as decimal(12, 2)), date '2024-01-01' + cast(i % 300 as integer)
        from range(?) as t(i)""", [n])


def grant_all(con: duckdb.DuckDBPyConnection, purposes: list[str]) -> None:
    con.execute(CONSENTS_DDL)
    for purpose in purposes:
        con.execute("""
            insert into main_marts.customer_consents
            select customer_id, ?, 'granted', timestamptz '2024-01-01 00:00:00+00'
            from main_marts.customers""", [purpose])


def config(tmp: Path, **sync: Any) -> ActivationConfig:
    base: dict[str, Any] = {
        "name": "crm",
        "source": "main_marts.customers",
        "primary_key": "customer_id",
        "fields": {"customer_id": "customer_id", "email": "email", "first_name": "first_name",
                   "city": "city", "lifetime_value": "lifetime_value"},
        "retry": {"max_attempts": 4, "initial_backoff_seconds": 0.01,
                  "max_backoff_seconds": 0.05},
    }
    base.update(sync)
    return parse_config({"syncs": [base]}, str(tmp / "syncs.yml"))


class SleepRecorder:
    """Stands in for time.sleep so that backoff is observable and tests stay fast."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@contextmanager
def customers_warehouse(tmp: Path, n: int) -> Iterator[duckdb.DuckDBPyConnection]:
    """A warehouse file `tmp/warehouse.duckdb` holding n customers, open for the block."""
    connection = duckdb.connect(str(tmp / "warehouse.duckdb"))
    make_customers(connection, n)
    try:
        yield connection
    finally:
        connection.close()
