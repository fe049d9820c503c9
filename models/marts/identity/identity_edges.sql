-- grain: one row per pair of identifiers seen together in a source record (edge_id)
-- Keeps the first source record that created the edge and the rule verdict; the explain path
-- (macro explain_identity_link) walks the kept edges.
-- noqa: disable=RF04
-- (`source` and `attribute` are contract column names, kept as the issue names them)
with edges as (
    select * from {{ ref('int_identity_edges_ruled') }}
),

nodes as (
    select * from {{ ref('int_identity_nodes') }}
),

exclusions as (
    select * from {{ ref('int_identity_exclusions') }}
),

assignments as (
    select * from {{ ref('int_identity_customer_ids_assigned') }}
    where is_active
),

final as (
    select
        {{ dbt.concat(['node_a.identifier_key', "'|'", 'node_b.identifier_key']) }} as edge_id,
        node_a.identifier_type as identifier_type_a,
        node_a.identifier_value as identifier_value_a,
        node_b.identifier_type as identifier_type_b,
        node_b.identifier_value as identifier_value_b,
        edges.first_source as source,
        edges.first_source_record_id as source_record_id,
        cast(edges.record_count as {{ dbt.type_bigint() }}) as record_count,
        edges.first_seen_at,
        edges.last_seen_at,
        case
            when edges.drop_reason is not null then edges.drop_reason
            when exclusion_a.node_id is not null then exclusion_a.exclusion_reason
            when exclusion_b.node_id is not null then exclusion_b.exclusion_reason
        end as drop_reason,
        (
            edges.drop_reason is null
            and exclusion_a.node_id is null
            and exclusion_b.node_id is null
        ) as is_kept,
        case
            when customer_a.customer_id = customer_b.customer_id then customer_a.customer_id
        end as customer_id
    from edges
    inner join nodes as node_a on edges.node_a = node_a.node_id
    inner join nodes as node_b on edges.node_b = node_b.node_id
    left join exclusions as exclusion_a on edges.node_a = exclusion_a.node_id
    left join exclusions as exclusion_b on edges.node_b = exclusion_b.node_id
    left join assignments as customer_a on node_a.identifier_key = customer_a.identifier_key
    left join assignments as customer_b on node_b.identifier_key = customer_b.identifier_key
)

select * from final
