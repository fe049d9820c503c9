-- grain: one row per strong identifier (node_id) on a kept strong-to-strong edge
-- Components of the strong identifiers alone: weak identifiers (devices, phones) are attached
-- afterwards, and only when they point to a single one of these components (hub rule).
{{ config(materialized='connected_components') }}

select
    node_a,
    node_b
from {{ ref('int_identity_edges_ruled') }}
where
    is_strong_edge
    and drop_reason is null
