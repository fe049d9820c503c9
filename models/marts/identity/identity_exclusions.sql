-- grain: one row per identifier excluded from merging (identity_id)
with exclusions as (
    select * from {{ ref('int_identity_exclusions') }}
),

nodes as (
    select * from {{ ref('int_identity_nodes') }}
),

final as (
    select
        exclusions.identifier_key as identity_id,
        exclusions.identifier_type,
        exclusions.identifier_value,
        exclusions.exclusion_reason,
        exclusions.exclusion_detail,
        nodes.first_seen_at,
        nodes.last_seen_at,
        cast(nodes.record_count as {{ dbt.type_bigint() }}) as record_count
    from exclusions
    inner join nodes on exclusions.node_id = nodes.node_id
)

select * from final
