"""dbt's per-invocation target folders are pruned to the last few runs, so target/ stops growing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from orchestration.dbt_assets import cdp_dbt_models, dbt_resource, prune_dbt_targets
from orchestration.settings import PROJECT_DIR, dbt_target_runs_kept

# A `cdp run` builds the dbt models in three steps, hence three folders per run.
STEPS = ("cdp_dbt_models", "cdp_dbt_models_2", "cdp_dbt_models_3")


def _folder(root: Path, name: str, age_seconds: int) -> Path:
    path = root / name
    (path / "compiled").mkdir(parents=True)
    (path / "manifest.json").write_text("{}")
    stamp = 1_700_000_000 - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def test_prune_keeps_the_folders_of_the_newest_runs_and_everything_else(tmp_path: Path) -> None:
    runs = {run: [_folder(tmp_path, f"{step}-{run}-{i:07x}", 100 * age + i)
                  for i, step in enumerate(STEPS)]
            for age, run in enumerate(["aaaaaa4", "aaaaaa3", "aaaaaa2", "aaaaaa1"])}
    bare = _folder(tmp_path, "0a1b2c3", 900)               # an invocation without a context
    current = _folder(tmp_path, "cdp_dbt_models-fffffff-0000000", 1000)  # oldest, still kept
    (tmp_path / "manifest.json").write_text("{}")          # `dbt parse`, read by the code location
    (tmp_path / "partial_parse.msgpack").write_text("")
    compiled = _folder(tmp_path, "compiled", 9999)         # a plain `dbt build` outside Dagster

    removed = prune_dbt_targets(current, keep_runs=2)

    assert sorted(removed) == sorted([*runs["aaaaaa3"], *runs["aaaaaa2"], *runs["aaaaaa1"], bare])
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {current.name, *(p.name for p in runs["aaaaaa4"]), compiled.name,
                    "manifest.json", "partial_parse.msgpack"}


def test_target_runs_kept_setting() -> None:
    assert dbt_target_runs_kept({}) == 3
    assert dbt_target_runs_kept({"CDP_DBT_TARGET_RUNS_KEPT": "5"}) == 5
    for bad in ("0", "-1", "three"):
        with pytest.raises(ValueError, match="CDP_DBT_TARGET_RUNS_KEPT"):
            dbt_target_runs_kept({"CDP_DBT_TARGET_RUNS_KEPT": bad})


def test_a_dbt_asset_run_prunes_older_runs_targets(cdp_env: dict[str, str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A real dbt build (one seed) keeping one run removes an earlier run's folders."""
    target_root = tmp_path / "target"
    target_root.mkdir()
    parsed = PROJECT_DIR / "target" / "partial_parse.msgpack"
    if parsed.exists():  # dagster-dbt copies it into each invocation folder: a faster parse
        shutil.copy(parsed, target_root / parsed.name)
    earlier = [_folder(target_root, f"{step}-0123abc-{i:07x}", 60) for i, step in enumerate(STEPS)]
    monkeypatch.setenv("DBT_TARGET_PATH", str(target_root))  # not the shared project target/
    monkeypatch.setenv("CDP_DBT_TARGET_RUNS_KEPT", "1")

    result = dg.materialize([cdp_dbt_models], selection=[dg.AssetKey(["consent_purposes"])],
                            resources={"dbt": dbt_resource()})

    assert result.success
    assert not any(p.exists() for p in earlier)
    folders = [p for p in target_root.iterdir() if p.is_dir()]
    assert [p.name.split("-")[1] for p in folders] == [result.run_id[:7]]
    assert (folders[0] / "run_results.json").exists()
    assert (target_root / parsed.name).exists() or not parsed.exists()
