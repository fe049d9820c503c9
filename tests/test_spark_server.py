"""The local Spark Thrift server: reused when live, a clear error when it cannot start."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from engine_support.spark import SparkThriftServer, free_port

from orchestration.warehouse.spark_server import (
    SparkServerError,
    SparkServerSettings,
    ensure_running,
    status,
)


def test_ensure_running_reuses_the_live_server(spark_thrift_server: SparkThriftServer) -> None:
    settings = spark_thrift_server.settings
    pid = settings.pid_file.read_text()
    started = time.monotonic()
    assert ensure_running(settings) == settings
    assert time.monotonic() - started < 10, "a live server must be reused, not restarted"
    assert settings.pid_file.read_text() == pid
    assert status(settings).endswith(f"pid {pid}, answering")


def test_a_server_that_dies_while_starting_names_its_log(tmp_path: Path) -> None:
    settings = SparkServerSettings.from_env({
        "CDP_SPARK_WAREHOUSE": str(tmp_path / "warehouse"), "CDP_SPARK_PORT": str(free_port()),
        "CDP_SPARK_DRIVER_MEMORY": "not-a-size"})
    with pytest.raises(SparkServerError, match="died while starting") as failure:
        ensure_running(settings, timeout=120)
    assert str(settings.log_file) in str(failure.value)
    assert "not-a-size" in str(failure.value) or "memory" in str(failure.value).lower()


def test_a_remote_host_is_never_started(tmp_path: Path) -> None:
    settings = SparkServerSettings.from_env({
        "CDP_SPARK_HOST": "192.0.2.1", "CDP_SPARK_PORT": "10000",
        "CDP_SPARK_WAREHOUSE": str(tmp_path / "warehouse")})
    with pytest.raises(SparkServerError, match="remote: nothing is started"):
        ensure_running(settings)
    assert not (tmp_path / "warehouse").exists()
