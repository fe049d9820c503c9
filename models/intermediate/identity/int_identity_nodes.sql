-- grain: one row per identifier (identifier_type, identifier_value) seen in a linking source
-- node_id is an integer for graph work: a hash of the identifier key (macro identity_node_id), the
-- same in every run and on every engine, so a run can compare its graph with the previous one.
with observed as (
    select * from {{ ref('int_identity_identifiers_observed') }}
    where is_linking
),

blocklist as (
    {{ identity_blocklist_values_sql() }}
),

identifiers as (
    select
        identifier_type,
        identifier_value,
        min(seen_at) as first_seen_at,
        max(seen_at) as last_seen_at,
        count(*) as record_count,
        count(distinct source) as source_count
    from observed
    group by identifier_type, identifier_value
),

final as (
    select
        {{ identity_node_id('identifiers.identifier_type', 'identifiers.identifier_value') }}
            as node_id,
        identifiers.identifier_type,
        identifiers.identifier_value,
        {{ identity_key('identifiers.identifier_type', 'identifiers.identifier_value') }}
            as identifier_key,
        {{ identity_type_case('identifiers.identifier_type', 'priority', '99') }} as type_priority,
        {{ identity_type_case('identifiers.identifier_type', 'strong', 'false') }} as is_strong,
        identifiers.first_seen_at,
        identifiers.last_seen_at,
        identifiers.record_count,
        identifiers.source_count,
        blocklist.identifier_value is not null as is_blocklisted
    from identifiers
    left join blocklist
        on
            identifiers.identifier_type = blocklist.identifier_type
            and identifiers.identifier_value = blocklist.identifier_value
)

select * from final
