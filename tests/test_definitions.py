"""The Dagster code location: its asset graph (groups, owners, no orphans), loading it without
side effects, and a bad syncs file failing one placeholder asset while everything else loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from orchestration.activation.config import INVALID_FILE_NAME
from orchestration.definitions import build_definitions, defs
from orchestration.settings import PROJECT_DIR

EXPECTED_GROUPS = {"ingestion", "staging", "identity", "profiles", "features", "segments",
                   "activation", "privacy", "publication", "serving", "reference"}


def defined_keys(definitions: dg.Definitions) -> set[dg.AssetKey]:
    """Keys some asset definition or spec of the code location declares (not the placeholders
    Dagster makes for an upstream nobody defines)."""
    graph = definitions.resolve_asset_graph()
    return {key for key in graph.get_all_asset_keys()
            if graph.get(key).is_materializable or graph.get(key).is_observable}


def dbt_source_keys() -> set[dg.AssetKey]:
    """dbt sources: tables dbt reads but nothing in the graph builds (landing tables are built
    by the loader; these may be written by a Python step without an asset of their own)."""
    from orchestration.dbt_assets import PROJECT, TRANSLATOR

    manifest = json.loads(PROJECT.manifest_path.read_text())
    return {TRANSLATOR.get_asset_key(source) for source in manifest["sources"].values()}


def test_asset_graph_groups_owners_and_no_orphans() -> None:
    graph = defs.resolve_asset_graph()
    keys = defined_keys(defs)
    assert len(keys) > 50  # the whole graph loaded, not a fragment
    groups = {graph.get(key).group_name for key in keys}
    assert groups == EXPECTED_GROUPS
    without_owner = sorted(key.to_user_string() for key in keys if not graph.get(key).owners)
    assert without_owner == []
    sources = dbt_source_keys()
    orphans = sorted(f"{key.to_user_string()} <- {parent.to_user_string()}"
                     for key in keys for parent in graph.get(key).parent_keys
                     if parent not in keys and parent not in sources)
    assert orphans == []
    checks = {(c.asset_key, c.name) for c in graph.asset_check_keys}
    assert (dg.AssetKey(["int_segment_members_evaluated"]), "segment_declarations_valid") in checks


def test_one_executor_runs_every_job_and_ad_hoc_materialisation_in_process() -> None:
    assert defs.resolve_job_def("cdp_full_pipeline").executor_def.name == "in_process"
    assert defs.resolve_job_def("cdp_trigger_fast_path").executor_def.name == "in_process"
    # what the UI's "Materialize" button runs
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"


def test_loading_the_definitions_runs_no_subprocess_and_changes_no_env(tmp_path: Path) -> None:
    """In a fresh interpreter: importing the code location starts no dbt process (no parse)
    and leaves the CDP_*/DBT_* variables as it found them (dbt gets its env per invocation).
    Libraries are not our concern (one probes the platform with `file -b python`, OpenMP sets
    KMP_* variables): only dbt commands and our variables are counted."""
    script = textwrap.dedent("""
        import json, os, subprocess, sys
        started = []
        real_init = subprocess.Popen.__init__
        def record(self, args, *a, **k):
            if "dbt" in str(args):
                started.append(str(args))
            return real_init(self, args, *a, **k)
        subprocess.Popen.__init__ = record
        before = dict(os.environ)
        from orchestration.definitions import defs
        defs.resolve_asset_graph()
        changed = sorted(k for k in set(before) | set(os.environ)
                         if before.get(k) != os.environ.get(k) and k.startswith(("CDP_", "DBT_")))
        print(json.dumps({"started": started, "changed": changed}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_")}
    env["CDP_WAREHOUSE"] = "data/relative.duckdb"  # relative: resolving it must not export it
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"started": [], "changed": []}


def broken_syncs_file(tmp_path: Path) -> Path:
    path = tmp_path / "syncs.yml"
    path.write_text(textwrap.dedent("""\
        syncs:
          - name: customers_to_files
            source: main_marts.customers
            primary_key: customer_id
            fields: {customer_id: customer_id
            destination: {type: files, url: /tmp/never}
        """))
    return path


def test_a_syntax_error_in_the_syncs_file_fails_one_placeholder_and_everything_else_loads(
        tmp_path: Path) -> None:
    path = broken_syncs_file(tmp_path)
    broken = build_definitions(sync_config=path)
    placeholder = dg.AssetKey(["activation", INVALID_FILE_NAME])

    good_keys = {k for k in defined_keys(defs) if k.path[0] != "activation"}
    broken_keys = defined_keys(broken)
    assert good_keys <= broken_keys  # every other asset still loads
    assert placeholder in broken_keys
    assert broken.resolve_job_def("cdp_full_pipeline") is not None
    assert broken.resolve_schedule_def("daily_full_pipeline_0500_utc") is not None
    assert [s.name for s in broken.sensors]  # the landing sensor too

    job = broken.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(asset_selection=[placeholder], raise_on_error=False,
                                    instance=dg.DagsterInstance.ephemeral())
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert f"{path}, line 6" in message  # file and line of the unclosed mapping
    assert "not valid YAML" in message


@pytest.mark.slow
def test_a_pipeline_dbt_step_after_make_parse_reuses_the_partial_parse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cdp prepare` (what `make parse` runs) and a dbt invocation of the pipeline agree on
    env, profile and --target, so dbt reads the partial parse instead of parsing again."""
    from orchestration.dbt_assets import dbt_resource

    monkeypatch.setenv("CDP_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("CDP_AS_OF", "2026-10-31")
    monkeypatch.delenv("CDP_DBT_TARGET", raising=False)
    prepared = subprocess.run([sys.executable, "-m", "orchestration.cli", "prepare"],
                              cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    target = tmp_path / "invocation"
    dbt_resource().cli(["ls", "--select", "customers"], target_path=target).wait()
    log = (target / "dbt.log").read_text()
    assert "Unable to do partial parsing" not in log
    assert "Partial parsing enabled" in log or "Nothing changed, skipping partial parsing" in log
