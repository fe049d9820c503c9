"""Shared pytest fixtures: sample landing data and an isolated warehouse per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
