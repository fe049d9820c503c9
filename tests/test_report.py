"""The run report and the figures on the assets: read from the shared sample run, plus an empty warehouse."""

from __future__ import annotations

import re
import shutil
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest
from engine_support.pipeline import target_env

from orchestration.catalog import catalog
from orchestration.report.assets import REPORT_KEY, write_report
from orchestration.report.page import clv_histogram, segment_sizes
from orchestration.settings import PROJECT_DIR, report_dir
from orchestration.warehouse.duckdb_engine import DuckDBWarehouse


@pytest.fixture(scope="module")
def sample_copy(sample_pipeline_run: dict[str, str],
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample run's warehouse (read here while other tests may read the original)."""
    copy = tmp_path_factory.mktemp("report_wh") / "warehouse.duckdb"
    shutil.copy(sample_pipeline_run["CDP_WAREHOUSE"], copy)
    return copy


def _latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, object]:
    event = instance.get_latest_materialization_event(key)
    assert event is not None, f"{key.to_user_string()} was not materialised by the sample run"
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def test_the_run_writes_a_report_with_every_chart(sample_pipeline_run: dict[str, str],
                                                  sample_copy: Path) -> None:
    page = (Path(sample_pipeline_run["CDP_WAREHOUSE"]).parent / "report" / "index.html").read_text()
    figures = re.findall(r"<figure.*?</figure>", page, flags=re.S)
    assert len(figures) >= 4
    for figure in figures:  # every chart drawn, titled, with axes and a caption naming its table
        assert "no-data-panel" not in figure
        assert "<svg" in figure and "<h2>" in figure and 'class="axis"' in figure
        assert re.search(r"<figcaption>Reads [a-z_.]+", figure), figure[:200]
    with target_env(sample_pipeline_run), closing(DuckDBWarehouse(sample_copy, read_only=True)) as wh:
        segments = [name for (name,) in wh.rows(  # segments that ever had a member
            "select distinct segment_name from "
            f"{catalog().relation('segment_membership_history')}")]
    sizes = figures[0]
    assert "Segment sizes over time" in sizes
    assert sorted(re.findall(r'data-series="([^"]+)"', sizes)) == sorted(segments)
    assert figures[1].count('class="bar"') == 20
    assert figures[2].count('class="point"') == 10  # one per churn score decile
    assert "bgnbd" in page and "gamma_gamma" in page  # the LTV fit table


def test_segment_sizes_and_histogram_agree_with_the_marts(sample_pipeline_run: dict[str, str],
                                                          sample_copy: Path) -> None:
    with target_env(sample_pipeline_run), closing(DuckDBWarehouse(sample_copy, read_only=True)) as wh:
        members = dict(wh.rows(f"select segment_name, count(*) from "
                               f"{catalog().relation('segment_memberships')} group by 1"))
        latest = {name: points[-1][1] for name, points in segment_sizes(wh).items()}
        priced = wh.scalar("select count(predicted_clv_365d) from "
                           f"{catalog().source('predictions', 'customer_predictions')}")
        bins = clv_histogram(wh)
    assert members and {name: latest.get(name) for name in members} == members
    assert sum(count for _, _, count in bins) == priced > 0
    assert all(low < high for low, high, _ in bins)


def test_the_run_records_row_counts_and_figures(sample_pipeline_run: dict[str, str],
                                                sample_copy: Path) -> None:
    home = sample_pipeline_run["DAGSTER_HOME"]
    with dg.DagsterInstance.from_config(home) as instance:
        customers = _latest_metadata(instance, dg.AssetKey(["customers"]))
        memberships = _latest_metadata(instance, dg.AssetKey(["segment_memberships"]))
        report = _latest_metadata(instance, REPORT_KEY)
    with target_env(sample_pipeline_run), closing(DuckDBWarehouse(sample_copy, read_only=True)) as wh:
        customer_count = wh.scalar(f"select count(*) from {catalog().relation('customers')}")
        members = dict(wh.rows(f"select segment_name, count(*) from "
                               f"{catalog().relation('segment_memberships')} group by 1"))
    assert customers["dagster/row_count"] == customer_count > 0
    assert {k.removeprefix("segment/"): v for k, v in memberships.items()
            if k.startswith("segment/")} == members
    assert {name: report[f"segment/{name}"] for name in members} == members
    assert isinstance(report["ltv/bgnbd.log_likelihood"], float)
    assert report["charts_with_data"] == report["charts"]


def test_missing_tables_give_no_data_panels(sample_pipeline_run: dict[str, str],
                                            tmp_path: Path) -> None:
    previous = tmp_path / "report" / "index.html"
    with target_env(sample_pipeline_run), closing(DuckDBWarehouse(tmp_path / "empty.duckdb")) as wh:
        path, metadata = write_report(wh, tmp_path / "report")
    page = path.read_text()
    assert path == previous
    assert metadata["charts_with_data"].value == 0 and metadata["charts"].value >= 4
    assert page.count("no-data-panel") == metadata["charts"].value
    assert "<svg" not in page and "No data yet" in page


def test_report_folder_setting(tmp_path: Path) -> None:
    assert report_dir({"CDP_REPORT_DIR": "out/pictures"}) == PROJECT_DIR / "out" / "pictures"
    assert report_dir({"CDP_REPORT_DIR": str(tmp_path)}) == tmp_path
