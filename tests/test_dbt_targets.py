"""dbt's per-invocation target folders are pruned to the last few, so target/ stops growing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from orchestration.dbt_assets import cdp_dbt_models, dbt_resource, prune_dbt_targets
from orchestration.settings import PROJECT_DIR, dbt_targets_kept


def _folder(root: Path, name: str, age_seconds: int) -> Path:
    path = root / name
    (path / "compiled").mkdir(parents=True)
    (path / "manifest.json").write_text("{}")
    stamp = 1_700_000_000 - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def test_prune_keeps_the_newest_invocations_and_everything_else(tmp_path: Path) -> None:
    old = [_folder(tmp_path, f"cdp_dbt_models-{i:07x}-abcdef{i}", 100 - i) for i in range(6)]
    bare = _folder(tmp_path, "0a1b2c3", 500)              # an invocation without a context
    current = _folder(tmp_path, "cdp_dbt_models-fffffff-0000000", 1000)  # oldest mtime, still kept
    (tmp_path / "manifest.json").write_text("{}")         # `dbt parse`, read by the code location
    (tmp_path / "partial_parse.msgpack").write_text("")
    compiled = _folder(tmp_path, "compiled", 9999)        # a plain `dbt build` outside Dagster

    removed = prune_dbt_targets(current, keep=3)

    assert sorted(removed) == sorted([*old[:4], bare])
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {current.name, old[5].name, old[4].name, compiled.name,
                    "manifest.json", "partial_parse.msgpack"}


def test_targets_kept_setting() -> None:
    assert dbt_targets_kept({}) == 3
    assert dbt_targets_kept({"CDP_DBT_TARGETS_KEPT": "5"}) == 5
    for bad in ("0", "-1", "three"):
        with pytest.raises(ValueError, match="CDP_DBT_TARGETS_KEPT"):
            dbt_targets_kept({"CDP_DBT_TARGETS_KEPT": bad})


def test_dbt_asset_runs_leave_only_the_last_targets(cdp_env: dict[str, str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two real dbt builds (one seed each) with CDP_DBT_TARGETS_KEPT=1 leave the second's folder."""
    target_root = tmp_path / "target"
    target_root.mkdir()
    parsed = PROJECT_DIR / "target" / "partial_parse.msgpack"
    if parsed.exists():  # dagster-dbt copies it into each invocation folder: a faster parse
        shutil.copy(parsed, target_root / parsed.name)
    monkeypatch.setenv("DBT_TARGET_PATH", str(target_root))  # not the shared project target/
    monkeypatch.setenv("CDP_DBT_TARGETS_KEPT", "1")
    run_ids = []
    for _ in range(2):
        result = dg.materialize([cdp_dbt_models], selection=[dg.AssetKey(["consent_purposes"])],
                                resources={"dbt": dbt_resource()})
        assert result.success
        run_ids.append(result.run_id)
    folders = sorted(p.name for p in target_root.iterdir() if p.is_dir())
    assert len(folders) == 1, folders
    assert folders[0].split("-")[1] == run_ids[1][:7]
    assert all((target_root / name / "run_results.json").exists() for name in folders)
