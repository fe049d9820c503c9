-- grain: one row per usable identifier (identity_id = '<identifier_type>:<identifier_value>')
with assignments as (
    select * from {{ ref('int_identity_customer_ids_assigned') }}
    where is_active
),

nodes as (
    select * from {{ ref('int_identity_nodes') }}
),

final as (
    select
        assignments.identifier_key as identity_id,
        assignments.customer_id,
        assignments.identifier_type,
        assignments.identifier_value,
        nodes.first_seen_at,
        nodes.last_seen_at,
        cast(nodes.source_count as {{ dbt.type_int() }}) as source_count,
        cast(nodes.record_count as {{ dbt.type_bigint() }}) as record_count
    from assignments
    inner join nodes on assignments.identifier_key = nodes.identifier_key
)

select * from final
