"""Shop-only landing folders (shop_orders + shop_order_lines) and the environment of a `cdp run`
on them: the CDNOW test and the edge-case shops share them."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest


def write_shop_landing(lines: pd.DataFrame, landing: Path) -> None:
    """One shop order per transaction line (at noon UTC) with one order line of `cds` CDs."""
    landing.mkdir(parents=True)
    pd.DataFrame({
        "order_id": lines["order_id"],
        "shop_customer_id": "cdnow-" + lines["customer"].astype(str),
        "email": "", "phone": "",
        "ordered_at": lines["day"].dt.strftime("%Y-%m-%dT12:00:00Z"),
        "total_amount": lines["value"], "currency": "USD", "status": "completed",
    }).to_csv(landing / "shop_orders.csv", index=False)
    pd.DataFrame({
        "order_id": lines["order_id"], "line_id": lines["order_id"] + "-1",
        "sku": "CD", "product_name": "CD", "category": "music", "quantity": lines["cds"],
        "unit_price": (lines["value"] / lines["cds"].where(lines["cds"] > 0, 1)).round(4),
    }).to_csv(landing / "shop_order_lines.csv", index=False)


@contextlib.contextmanager
def pipeline_env(out: Path, as_of: dt.date) -> Iterator[None]:
    """CDP_* variables for a run on `out/landing` into files under `out`, as of `as_of`."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in {
            "CDP_LANDING_DIR": out / "landing", "CDP_WAREHOUSE": out / "warehouse.duckdb",
            "CDP_PUBLICATION": out / "publication.duckdb", "CDP_ACTIVATION_DIR": out / "activation",
            "CDP_SERVING_SNAPSHOT": out / "serving.duckdb", "CDP_SPARK_WAREHOUSE": out / "spark",
            "CDP_PRIVACY_EXPORT_DIR": out / "exports", "CDP_RUN_LOG": out / "cdp-run.log",
            "CDP_DBT_TARGET": "duckdb", "CDP_AS_OF": as_of.isoformat(),
        }.items():
            env.setenv(key, str(value))
        env.delenv("DAGSTER_HOME", raising=False)
        yield
