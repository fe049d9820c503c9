"""The static HTML run report (charts of segments, LTV, churn calibration and KPIs) and its asset."""

from orchestration.report.assets import REPORT_ASSETS, REPORT_KEY, write_report

__all__ = ["REPORT_ASSETS", "REPORT_KEY", "write_report"]
