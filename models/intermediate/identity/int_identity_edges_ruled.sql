-- grain: one row per pair of linked identifiers (node_a < node_b), with the rule verdict
-- drop_reason: null = kept; 'hub' = an end is linked to more strong identifiers than
-- var identity.hub_max_strong_neighbours; 'limit:<type>' = keeping the edge would give a profile
-- more identifiers of <type> than its max_per_customer and this edge is among the weaker ones.
{%- set settings = var('identity') %}

with observed_edges as (
    select * from {{ ref('int_identity_edges_observed') }}
),

nodes as (
    select * from {{ ref('int_identity_nodes') }}
),

node_ids_observed as (
    select
        observed_edges.source,
        observed_edges.source_record_id,
        observed_edges.seen_at,
        {{ identity_node_id('observed_edges.identifier_type_a', 'observed_edges.identifier_value_a') }}
            as node_id_a,
        {{ identity_node_id('observed_edges.identifier_type_b', 'observed_edges.identifier_value_b') }}
            as node_id_b
    from observed_edges
),

edges_by_node as (
    -- both ends must be usable nodes (suppressed identifiers are not); ids are hashes of the keys
    select
        source,
        source_record_id,
        seen_at,
        case when node_id_a < node_id_b then node_id_a else node_id_b end as node_a,
        case when node_id_a < node_id_b then node_id_b else node_id_a end as node_b
    from node_ids_observed
    where
        node_id_a in (select nodes.node_id from nodes)
        and node_id_b in (select nodes.node_id from nodes)
),

first_records as (
    {{ deduplicate('edges_by_node', 'node_a, node_b', 'seen_at, source, source_record_id') }}
),

edge_stats as (
    select
        node_a,
        node_b,
        count(*) as record_count,
        min(seen_at) as first_seen_at,
        max(seen_at) as last_seen_at
    from edges_by_node
    group by node_a, node_b
),

edges as (
    select
        edge_stats.node_a,
        edge_stats.node_b,
        edge_stats.record_count,
        edge_stats.first_seen_at,
        edge_stats.last_seen_at,
        first_records.source as first_source,
        first_records.source_record_id as first_source_record_id
    from edge_stats
    inner join first_records
        on
            edge_stats.node_a = first_records.node_a
            and edge_stats.node_b = first_records.node_b
),

directed as (
    select
        edges.node_a as node_id,
        edges.node_b as neighbour_id,
        edges.node_a,
        edges.node_b,
        edges.record_count,
        edges.last_seen_at
    from edges
    union all
    select
        edges.node_b as node_id,
        edges.node_a as neighbour_id,
        edges.node_a,
        edges.node_b,
        edges.record_count,
        edges.last_seen_at
    from edges
),

directed_typed as (
    select
        directed.*,
        neighbours.identifier_type as neighbour_type,
        neighbours.identifier_value as neighbour_value,
        neighbours.is_strong as neighbour_is_strong
    from directed
    inner join nodes as neighbours on directed.neighbour_id = neighbours.node_id
),

degree_hubs as (
    select node_id
    from directed_typed
    where neighbour_is_strong
    group by node_id
    having count(*) > {{ settings['hub_max_strong_neighbours'] }}
),

ranked as (
    -- per identifier and neighbour type, strongest edges first: more records, then more recent
    select
        directed_typed.*,
        row_number() over (
            partition by directed_typed.node_id, directed_typed.neighbour_type
            order by
                directed_typed.record_count desc,
                directed_typed.last_seen_at desc,
                directed_typed.neighbour_value asc
        ) as strength_rank,
        {{ identity_type_case('directed_typed.neighbour_type', 'max_per_customer') }}
            as neighbour_type_limit
    from directed_typed
    where
        directed_typed.node_id not in (select degree_hubs.node_id from degree_hubs)
        and directed_typed.neighbour_id not in (select degree_hubs.node_id from degree_hubs)
),

over_limit as (
    select
        node_a,
        node_b,
        min({{ dbt.concat(["'limit:'", 'neighbour_type']) }}) as drop_reason
    from ranked
    where strength_rank > neighbour_type_limit
    group by node_a, node_b
),

final as (
    select
        edges.node_a,
        edges.node_b,
        edges.record_count,
        edges.first_seen_at,
        edges.last_seen_at,
        edges.first_source,
        edges.first_source_record_id,
        node_a.is_strong and node_b.is_strong as is_strong_edge,
        edges.node_a in (select degree_hubs.node_id from degree_hubs) as is_hub_a,
        edges.node_b in (select degree_hubs.node_id from degree_hubs) as is_hub_b,
        case
            when
                edges.node_a in (select degree_hubs.node_id from degree_hubs)
                or edges.node_b in (select degree_hubs.node_id from degree_hubs)
                then 'hub'
            else over_limit.drop_reason
        end as drop_reason
    from edges
    inner join nodes as node_a on edges.node_a = node_a.node_id
    inner join nodes as node_b on edges.node_b = node_b.node_id
    left join over_limit
        on
            edges.node_a = over_limit.node_a
            and edges.node_b = over_limit.node_b
)

select * from final
