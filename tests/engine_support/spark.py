"""A real Spark Thrift server for the test session: a tmp warehouse and metastore on a free port."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from orchestration.warehouse.spark_server import SparkServerSettings, ensure_running, stop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return int(sock.getsockname()[1])


@dataclass
class SparkThriftServer:
    """The session's server; `env` holds the CDP_SPARK_* variables that reach it."""

    settings: SparkServerSettings
    env: dict[str, str]

    def drop_schemas(self, *schemas: str) -> None:
        """Drop schemas (and their tables) so a test starts from an empty state."""
        from pyhive import hive

        conn = hive.connect(host=self.settings.connect_host, port=self.settings.port,
                            username=self.settings.user)
        try:
            cursor = conn.cursor()
            for schema in schemas:
                cursor.execute(f"drop database if exists `{schema}` cascade")
        finally:
            conn.close()

    def drop_all_schemas(self) -> None:
        """Every schema but `default`: a test that runs the whole pipeline starts from nothing."""
        from pyhive import hive

        conn = hive.connect(host=self.settings.connect_host, port=self.settings.port,
                            username=self.settings.user)
        try:
            cursor = conn.cursor()
            cursor.execute("show databases")
            schemas = [row[0] for row in cursor.fetchall() if row[0] != "default"]
        finally:
            conn.close()
        self.drop_schemas(*schemas)

    def stop(self) -> None:
        stop(self.settings)


def start_spark(workdir: Path, driver_memory: str = "2g") -> SparkThriftServer:
    env = {"CDP_SPARK_HOST": "localhost", "CDP_SPARK_PORT": str(free_port()),
           "CDP_SPARK_WAREHOUSE": str(workdir / "warehouse"),
           "CDP_SPARK_DRIVER_MEMORY": driver_memory, "CDP_SPARK_SHUFFLE_PARTITIONS": "4",
           "CDP_SPARK_STAGING_DIR": str(workdir / "staging")}
    settings = ensure_running(SparkServerSettings.from_env(env))
    return SparkThriftServer(settings=settings, env=env)
