"""The CDNOW purchase-log sample (tests/fixtures/cdnow, as shipped with `lifetimes`) as transactions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CDNOW_SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cdnow" / "CDNOW_sample.txt"


def cdnow_transactions(path: Path = CDNOW_SAMPLE) -> pd.DataFrame:
    """One row per purchase line, in the columns churn's and propensity's features read."""
    frame = pd.read_csv(path, sep=r"\s+", header=None, dtype={"master_id": str, "date": str},
                        names=["master_id", "customer", "date", "cds", "value"])
    return pd.DataFrame({"customer_id": frame["master_id"],
                         "transacted_at": pd.to_datetime(frame["date"], format="%Y%m%d"),
                         "amount": frame["value"].astype("float64"), "channel": "online"})
