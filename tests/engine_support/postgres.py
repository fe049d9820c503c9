"""A real PostgreSQL server (pgserver) for the test session and fresh databases on it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import psycopg2

_counter = itertools.count()


@dataclass
class PostgresServer:
    server: object
    uri: str

    @property
    def socket_dir(self) -> str:
        return parse_qs(urlparse(self.uri).query)["host"][0]

    @property
    def port(self) -> int:
        return urlparse(self.uri).port or 5432

    def admin(self):
        conn = psycopg2.connect(self.uri)
        conn.autocommit = True
        return conn

    def fresh_database(self, prefix: str = "cdp") -> dict[str, str]:
        """Create an empty database; returns the CDP_PG_* variables that reach it."""
        name = f"{prefix}_{next(_counter)}"
        conn = self.admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f"drop database if exists {name}")
                cur.execute(f"create database {name}")
        finally:
            conn.close()
        return {"CDP_PG_HOST": self.socket_dir, "CDP_PG_PORT": str(self.port),
                "CDP_PG_USER": "postgres", "CDP_PG_PASSWORD": "", "CDP_PG_DATABASE": name}


def start_postgres(workdir: Path) -> PostgresServer:
    import pgserver

    server = pgserver.get_server(workdir, cleanup_mode="stop")
    return PostgresServer(server=server, uri=server.get_uri())
