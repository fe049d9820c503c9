-- grain: one row per identifier (node_id) on a kept edge, with its component (profile)
-- The graph: every strong identifier hooked to its strong component, plus the kept edges of
-- weak identifiers that are not excluded. Connectivity is that of all kept edges.
{{ config(materialized='connected_components') }}

with strong_components as (
    select * from {{ ref('int_identity_strong_components') }}
),

edges as (
    select * from {{ ref('int_identity_edges_ruled') }}
),

exclusions as (
    select * from {{ ref('int_identity_exclusions') }}
),

strong_stars as (
    select
        node_id as node_a,
        component_id as node_b
    from strong_components
    where node_id <> component_id
),

weak_edges as (
    select
        node_a,
        node_b
    from edges
    where
        not is_strong_edge
        and drop_reason is null
        and node_a not in (select exclusions.node_id from exclusions)
        and node_b not in (select exclusions.node_id from exclusions)
),

final as (
    select * from strong_stars
    union all
    select * from weak_edges
)

select * from final
