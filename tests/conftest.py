"""Shared pytest fixtures: sample landing data and an isolated warehouse per test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine_support.declared_inputs import DeclaredRun, declared_run
from engine_support.pipeline import pipeline_env
from engine_support.scratch import ScratchRun, fresh_scratch
from tools.sample_data import generate

SAMPLE_CUSTOMERS = 300


@pytest.fixture(scope="session")
def sample_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small generated landing folder, shared read-only by the tests of one session."""
    out = tmp_path_factory.mktemp("landing")
    generate(customers=SAMPLE_CUSTOMERS, seed=7, out=out)
    return out


@pytest.fixture
def cdp_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_landing: Path) -> dict[str, str]:
    """Point the CDP at the sample landing folder and a fresh warehouse file."""
    env = {
        "CDP_LANDING_DIR": str(sample_landing),
        "CDP_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "CDP_PUBLICATION": str(tmp_path / "publication.duckdb"),
        "CDP_ACTIVATION_DIR": str(tmp_path / "activation"),
        "CDP_SERVING_SNAPSHOT": str(tmp_path / "serving.duckdb"),
        "CDP_DBT_TARGET": "duckdb",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CDP_AS_OF", raising=False)
    return {**os.environ, **env}


@pytest.fixture(scope="session")
def sample_pipeline_run(tmp_path_factory: pytest.TempPathFactory,
                        sample_landing: Path) -> dict[str, str]:
    """One whole `cdp run` (a subprocess: the `make run` path) on the sample landing folder.

    Tests that only read its files, or copy them as the start of a run of their own, share it
    (a whole run costs about two minutes on CI). Its Dagster home (`DAGSTER_HOME` of the result)
    keeps the run's event log, so a test can read the materialisations and asset checks of the
    job; the environment of a test's own run should drop `DAGSTER_HOME` and point the output
    files at its own tmp_path."""
    env = pipeline_env(tmp_path_factory.mktemp("sample_run"), sample_landing, "duckdb", {})
    result = subprocess.run([sys.executable, "-m", "orchestration.cli", "run"],
                            env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return env


@pytest.fixture(scope="session")
def declared_inputs_run(tmp_path_factory: pytest.TempPathFactory,
                        sample_landing: Path) -> DeclaredRun:
    """One whole `cdp run` of the sample with the input examples (lead ads, app installs) and the
    Segment warehouse preset instead of the Segment landing files (engine_support/
    declared_inputs.py), shared by tests/test_inputs_examples.py and tests/test_inputs_presets.py:
    one run instead of one per module."""
    return declared_run(tmp_path_factory.mktemp("declared_inputs"), sample_landing)


@pytest.fixture(scope="session")
def scratch_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scratch_run")


@pytest.fixture
def scratch_run(scratch_root: Path, sample_pipeline_run: dict[str, str]) -> ScratchRun:
    """A fresh copy of the shared run's warehouse at one path for the whole session, so the dbt
    builds of the tests that use it share one parse (engine_support/scratch.py)."""
    return fresh_scratch(scratch_root, sample_pipeline_run)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory):
    """One real PostgreSQL server (pgserver) for the session; tests take fresh databases on it."""
    from engine_support.postgres import start_postgres

    server = start_postgres(tmp_path_factory.mktemp("pgserver"))
    yield server
    server.server.cleanup()


@pytest.fixture(scope="session")
def spark_thrift_server(tmp_path_factory: pytest.TempPathFactory):
    """One real Spark Thrift server for the session (tmp warehouse + Derby metastore, free port);
    `.env` has the CDP_SPARK_* variables that reach it (tests/engine_support/spark.py)."""
    from engine_support.spark import start_spark

    server = start_spark(tmp_path_factory.mktemp("spark_thrift"))
    yield server
    server.stop()
