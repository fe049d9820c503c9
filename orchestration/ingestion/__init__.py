"""Loading landing files into the raw schema: the contract, discovery, the loader and its report.

The Dagster asset lives in `orchestration.ingestion.assets` (not re-exported here: it imports
orchestration.privacy, which reads the contract from this package).
"""

from orchestration.ingestion.contract import (
    SOURCES,
    SOURCES_BY_NAME,
    ColumnType,
    LandingLimits,
    LandingSource,
    landing_source_named,
    landing_sources,
)
from orchestration.ingestion.discovery import LandingInventory, discover_landing
from orchestration.ingestion.errors import LandingError, LandingFileError
from orchestration.ingestion.loader import PrivacyAtLoad, load_landing, load_source
from orchestration.ingestion.readers.csv import NOT_UTF8_REASON
from orchestration.ingestion.reports import LandingLoadError, LoadReport, SourceReport
from orchestration.ingestion.schema import ensure_raw_schema

__all__ = [
    "NOT_UTF8_REASON",
    "SOURCES",
    "SOURCES_BY_NAME",
    "ColumnType",
    "LandingError",
    "LandingFileError",
    "LandingInventory",
    "LandingLimits",
    "LandingLoadError",
    "LandingSource",
    "LoadReport",
    "PrivacyAtLoad",
    "SourceReport",
    "discover_landing",
    "landing_source_named",
    "landing_sources",
    "ensure_raw_schema",
    "load_landing",
    "load_source",
]
