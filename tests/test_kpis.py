"""Campaign KPIs on the shared sample run: the per-campaign mart is filled with sane rates, cdp_kpis
carries the new KPIs, and an ad platform export (the example file) feeds CTR and CPC."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from engine_support.pipeline import target_env
from engine_support.scratch import ScratchRun

from orchestration.catalog import catalog
from orchestration.settings import PROJECT_DIR

RATES = ["open_rate", "click_rate", "click_to_open_rate", "unsubscribe_rate", "conversion_rate",
         "click_through_rate"]
AD_EXPORT = PROJECT_DIR / "examples" / "ads" / "ad_performance.csv"


@pytest.fixture(scope="module")
def sample_kpis(sample_pipeline_run: dict[str, str]) -> dict[str, pd.DataFrame]:
    with target_env(sample_pipeline_run):
        cat = catalog()
        with duckdb.connect(sample_pipeline_run["CDP_WAREHOUSE"], read_only=True) as con:
            return {
                "campaigns": con.execute(
                    f"select * from {cat.relation('campaign_performance')}").df(),
                "kpis": con.execute(f"select * from {cat.relation('cdp_kpis')} "
                                    f"where kpi_date = (select max(kpi_date) from "
                                    f"{cat.relation('cdp_kpis')})").df(),
            }


def test_campaign_performance_is_filled_with_rates_between_0_and_1(
        sample_kpis: dict[str, pd.DataFrame]) -> None:
    campaigns = sample_kpis["campaigns"]
    email = campaigns[campaigns["channel"] == "email"]
    assert len(email) > 0 and email["delivered"].sum() > 0
    assert (email["opened"] <= email["delivered"]).all()
    assert (email["clicked"] <= email["opened"]).all()
    assert (email["conversions"] <= email["delivered"]).all()
    assert email["opened"].sum() > 0 and email["conversions"].sum() > 0
    for rate in RATES:
        values = campaigns[rate].dropna().astype(float)
        assert values.between(0, 1).all(), rate
    assert email["click_to_open_rate"].notna().any()


def test_cdp_kpis_split_conversion_by_channel_and_count_consented_growth(
        sample_kpis: dict[str, pd.DataFrame]) -> None:
    kpis = sample_kpis["kpis"].set_index("kpi_name")
    for name in ("web_conversion_rate_30d", "web_visitor_store_purchase_rate_30d",
                 "email_click_to_open_rate_90d", "identified_profile_growth_30d",
                 "consented_profile_growth_30d"):
        assert name in kpis.index, name
    assert "conversion_rate_30d" not in kpis.index  # the pooled web+store rate is gone
    for name in ("web_conversion_rate_30d", "web_visitor_store_purchase_rate_30d",
                 "email_click_to_open_rate_90d"):
        value = kpis.loc[name, "kpi_value"]  # NULL when the sample has no web visit in 30 days
        assert pd.isna(value) or 0 <= float(value) <= 1, name
    # both rates share one denominator (web visitors in 30 days)
    assert (kpis.loc["web_conversion_rate_30d", "denominator"]
            == kpis.loc["web_visitor_store_purchase_rate_30d", "denominator"])
    # no consent without a decision: consented profiles are at most the identified ones
    consented = kpis.loc["consented_profile_growth_30d"]
    profiles = float(kpis.loc["profiles", "numerator"])
    assert 0 < float(consented["numerator"]) + float(consented["denominator"]) <= profiles
    assert pd.isna(kpis.loc["ad_click_through_rate", "kpi_value"])  # no ad export in the sample


def test_an_ad_export_feeds_ctr_and_cpc_per_campaign(scratch_run: ScratchRun) -> None:
    warehouse, env = scratch_run.warehouse, scratch_run.env
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table raw.ad_performance as select * from read_csv(?, header = true)",
                    [str(AD_EXPORT)])
    scratch_run.build("stg_ads__ad_performance", "campaign_performance")

    export = pd.read_csv(AD_EXPORT)
    expected = export.groupby(["platform", "campaign_id"])[["impressions", "clicks", "spend"]].sum()
    with target_env(env), duckdb.connect(str(warehouse), read_only=True) as con:
        ads = con.execute(
            f"select channel, campaign_id, impressions, clicked, spend, click_through_rate, "
            f"cost_per_click, delivered from {catalog().relation('campaign_performance')} "
            f"where channel <> 'email'").df().set_index(["channel", "campaign_id"])
    assert sorted(ads.index) == sorted(expected.index)
    for key, row in expected.iterrows():
        assert ads.loc[key, "impressions"] == row["impressions"]
        assert float(ads.loc[key, "click_through_rate"]) == pytest.approx(
            row["clicks"] / row["impressions"], abs=1e-4)
        assert float(ads.loc[key, "cost_per_click"]) == pytest.approx(
            row["spend"] / row["clicks"], abs=1e-4)
    assert ads["delivered"].isna().all()


def test_kpi_report_lists_the_latest_campaigns(sample_pipeline_run: dict[str, str],
                                               sample_kpis: dict[str, pd.DataFrame]) -> None:
    from orchestration.kpis import campaign_table, read_campaigns
    from orchestration.warehouse import WarehouseResource

    with target_env(sample_pipeline_run):
        resource = WarehouseResource(path=sample_pipeline_run["CDP_WAREHOUSE"])
        with resource.open(read_only=True) as wh:
            campaigns = read_campaigns(wh, limit=3)
    latest = sample_kpis["campaigns"].sort_values("first_activity_at", ascending=False).head(3)
    assert list(campaigns["campaign_performance_id"]) == list(latest["campaign_performance_id"])
    table = campaign_table(campaigns).splitlines()
    assert len(table) == 2 + 3
    assert all(cid in "\n".join(table) for cid in latest["campaign_performance_id"])
