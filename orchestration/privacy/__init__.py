"""Data-subject requests: erasure, suppression, access and rectification, on the warehouse.

Requests come from the `privacy_requests` source (staged as `stg_privacy__requests`). Each new
request is resolved to the person's whole identity cluster (`customer_identities`) and executed
once, by one batch executor (one request is a batch of one):

* erasure (suppress and delete): raw rows of the cluster are deleted, or their PII columns nulled
  where the row must stay for accounting (orders, store transactions); the rows of every derived
  table (intermediate, marts, predictions, ...) are deleted; the identifiers' salted hashes go to
  `privacy.suppression_list`, so data arriving later cannot re-create the person; destinations
  lose the person on their next sync (the activation engine removes keys that left the source).
* suppression (suppress only): hashes on the suppression list and derived rows removed, raw kept.
* access: a JSON export of every row held about the cluster, in every table.
* rectification: a corrected attribute value, recorded in `privacy.rectifications`, that wins
  survivorship over every older value (`rectification`).

The package, top down: `assets` (the Dagster asset) -> `runs` (one run) -> `executor` (the batch,
split on failure) and `suppression` (late data, loader hooks) -> `steps`, `export`,
`destinations` -> `matching`, `requests` -> `sources`, `audit`. Audit scan: `traces`.
See docs/privacy.md.
"""

from orchestration.privacy.assets import PRIVACY_ASSETS, privacy_requests_executed
from orchestration.privacy.audit import (
    COMPACTION_TARGET, DEFAULT_SALT, ERASING_ACTIONS, HASH_PREFIX, LOG, PRIVACY_STATUSES, REQUESTS,
    SCHEMA, SUPPRESSION, TargetResult, compaction_due, ensure_privacy_tables, identifier_hash,
    last_erasure_at, salt, write_log, write_logs,
)
from orchestration.privacy.destinations import (
    pending_destination_removals, refresh_destination_removals,
)
from orchestration.privacy.executor import RequestOutcome, execute_batch
from orchestration.privacy.export import export_dir, export_file_name
from orchestration.privacy.matching import cluster_record_ids
from orchestration.privacy.requests import (
    ACCESS_TYPES, ERASE_TYPES, SUPPRESS_TYPES, Cluster, new_requests, request_action,
    resolve_cluster,
)
from orchestration.privacy.runs import PrivacyRunReport, execute_privacy_requests
from orchestration.privacy.sources import KEPT_FOR_ACCOUNTING, IdentifiedSource, identified_sources
from orchestration.privacy.steps import erase_raw, scrub_derived
from orchestration.privacy.suppression import (
    drop_suppressed_rows, purge_late_rows_at_load, purge_suppressed,
)
from orchestration.privacy.traces import find_traces

__all__ = [
    "ACCESS_TYPES", "COMPACTION_TARGET", "DEFAULT_SALT", "ERASE_TYPES", "ERASING_ACTIONS",
    "HASH_PREFIX", "LOG", "KEPT_FOR_ACCOUNTING", "PRIVACY_ASSETS", "PRIVACY_STATUSES", "REQUESTS",
    "SCHEMA", "SUPPRESSION", "SUPPRESS_TYPES", "Cluster", "IdentifiedSource", "PrivacyRunReport",
    "RequestOutcome", "TargetResult", "cluster_record_ids", "compaction_due",
    "drop_suppressed_rows", "ensure_privacy_tables", "erase_raw", "execute_batch",
    "execute_privacy_requests", "export_dir", "export_file_name", "find_traces",
    "identified_sources", "identifier_hash", "last_erasure_at", "new_requests",
    "pending_destination_removals", "privacy_requests_executed", "purge_late_rows_at_load",
    "purge_suppressed", "refresh_destination_removals", "request_action", "resolve_cluster",
    "salt", "scrub_derived", "write_log", "write_logs",
]
