-- grain: one row per staged source record carrying at least one usable identifier
-- The attribution itself lives in int_source_records_assigned (read by features and consents too).
with assigned as (
    select * from {{ ref('int_source_records_assigned') }}
),

final as (
    select
        customer_source_record_id,
        source,  -- noqa: RF04
        source_record_id,
        customer_id,
        matched_identifier_type
    from assigned
)

select * from final
