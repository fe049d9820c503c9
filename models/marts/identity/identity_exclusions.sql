-- grain: one row per identifier excluded from merging or cut by a conflict rule (identity_id)
with exclusions as (
    select * from {{ ref('int_identity_exclusions') }}
),

conflicts as (
    select * from {{ ref('int_identity_conflicts') }}
),

nodes as (
    select * from {{ ref('int_identity_nodes') }}
),

listed as (
    select
        node_id,
        identifier_key,
        identifier_type,
        identifier_value,
        exclusion_reason,
        exclusion_detail,
        evidence_type,
        evidence_count,
        evidence_examples,
        true as is_excluded
    from exclusions
    union all
    select
        node_id,
        identifier_key,
        identifier_type,
        identifier_value,
        exclusion_reason,
        exclusion_detail,
        evidence_type,
        evidence_count,
        evidence_examples,
        false as is_excluded
    from conflicts
),

final as (
    select
        listed.identifier_key as identity_id,
        listed.identifier_type,
        listed.identifier_value,
        listed.exclusion_reason,
        listed.exclusion_detail,
        listed.is_excluded,
        listed.evidence_type,
        cast(listed.evidence_count as {{ dbt.type_bigint() }}) as evidence_count,
        listed.evidence_examples,
        nodes.first_seen_at,
        nodes.last_seen_at,
        cast(nodes.record_count as {{ dbt.type_bigint() }}) as record_count
    from listed
    inner join nodes on listed.node_id = nodes.node_id
)

select * from final
