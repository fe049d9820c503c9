"""dbt-duckdb plugin: the CDP_DUCKDB_* limits on the database dbt opens (profiles/profiles.yml)."""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from orchestration.warehouse.duckdb_limits import apply_limits


class Plugin(BasePlugin):
    """Declared under `plugins:` of the duckdb output of profiles/profiles.yml: dbt-duckdb calls
    configure_connection once on the database it opens, before any model runs."""

    def configure_connection(self, conn: Any) -> None:
        apply_limits(conn)
