-- grain: one row per staged source record with at least one usable identifier, and its customer_id
-- The one home of record -> customer attribution: customer_source_records publishes it, and every
-- model that needs a record's customer (features, consents, survivorship) reads it here.
-- A record whose identifiers ended in different profiles (an edge dropped by a rule) belongs to
-- the profile of its strongest identifier.
-- noqa: disable=RF04
-- (`source` and `attribute` are contract column names, kept as the issue names them)
with observed as (
    select * from {{ ref('int_identity_identifiers_observed') }}
),

assignments as (
    select * from {{ ref('int_identity_customer_ids_assigned') }}
    where is_active
),

matched as (
    select
        observed.source,
        observed.source_record_id,
        observed.identifier_type,
        assignments.customer_id,
        {{ identity_type_case('observed.identifier_type', 'priority', '99') }} as type_priority
    from observed
    inner join assignments
        on
            observed.identifier_type = assignments.identifier_type
            and observed.identifier_value = assignments.identifier_value
),

strongest as (
    {{ deduplicate('matched', 'source, source_record_id', 'type_priority, customer_id') }}
),

final as (
    select
        {{ dbt.concat(['source', "':'", 'source_record_id']) }} as customer_source_record_id,
        source,
        source_record_id,
        customer_id,
        identifier_type as matched_identifier_type
    from strongest
)

select * from final
