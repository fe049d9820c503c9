-- grain: one row per identifier excluded from merging (node_id), with the reason
-- blocklist: listed in var identity.blocklist; hub: linked to more strong identifiers than
-- var identity.hub_max_strong_neighbours; shared: a weak identifier linked to more separate strong
-- profiles than its type's max_profiles (a kiosk device, a household phone).
with nodes as (
    select * from {{ ref('int_identity_nodes') }}
),

edges as (
    select * from {{ ref('int_identity_edges_ruled') }}
),

strong_components as (
    select * from {{ ref('int_identity_strong_components') }}
),

degree_hubs as (
    select node_a as node_id from edges
    where is_hub_a
    union
    select node_b as node_id from edges
    where is_hub_b
),

weak_to_strong as (
    -- each weak identifier with the strong profile of each strong identifier it is linked to
    select
        case when node_a.is_strong then edges.node_b else edges.node_a end as node_id,
        coalesce(
            strong_components.component_id,
            case when node_a.is_strong then edges.node_a else edges.node_b end
        ) as strong_component_id
    from edges
    inner join nodes as node_a on edges.node_a = node_a.node_id
    inner join nodes as node_b on edges.node_b = node_b.node_id
    left join strong_components
        on
            strong_components.node_id
            = case when node_a.is_strong then edges.node_a else edges.node_b end
    where
        (node_a.is_strong and not node_b.is_strong)
        or (node_b.is_strong and not node_a.is_strong)
),

shared_weak as (
    select
        weak_to_strong.node_id,
        count(distinct weak_to_strong.strong_component_id) as linked_profiles
    from weak_to_strong
    inner join nodes on weak_to_strong.node_id = nodes.node_id
    group by weak_to_strong.node_id, nodes.identifier_type
    having
        count(distinct weak_to_strong.strong_component_id)
        > {{ identity_type_case('nodes.identifier_type', 'max_profiles', '1000000000') }}
),

excluded as (
    select
        node_id,
        'blocklist' as exclusion_reason,
        'listed in var identity.blocklist' as exclusion_detail
    from nodes
    where is_blocklisted
    union all
    select
        node_id,
        'hub' as exclusion_reason,
        'linked to more than {{ var("identity")["hub_max_strong_neighbours"] }} strong identifiers'
            as exclusion_detail
    from degree_hubs
    union all
    select
        node_id,
        'shared' as exclusion_reason,
        {{ dbt.concat([
            "'links '",
            'cast(linked_profiles as ' ~ dbt.type_string() ~ ')',
            "' separate profiles'",
        ]) }}
            as exclusion_detail
    from shared_weak
    where node_id not in (select degree_hubs.node_id from degree_hubs)
),

final as (
    select
        nodes.node_id,
        nodes.identifier_type,
        nodes.identifier_value,
        nodes.identifier_key,
        excluded.exclusion_reason,
        excluded.exclusion_detail
    from excluded
    inner join nodes on excluded.node_id = nodes.node_id
)

select * from final
