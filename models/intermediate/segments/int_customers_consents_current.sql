-- grain: one row per customer_id and consent purpose (seed consent_purposes)
with assignments as (
    select * from {{ ref('int_identity_customer_ids_assigned') }}
    where is_active
),

customers as (
    -- every profile (the customer ids of customers)
    select distinct customer_id from assignments
),

purposes as (
    select * from {{ ref('consent_purposes') }}
),

source_records as (
    select * from {{ ref('int_source_records_assigned') }}
),

consents as (
    select * from {{ ref('stg_consent__consents') }}
),

customer_consents as (
    select
        source_records.customer_id,
        consents.purpose,
        consents.consent_status,
        consents.occurred_at,
        consents.consent_id
    from consents
    inner join source_records
        on
            source_records.source = 'consents'
            and consents.consent_id = source_records.source_record_id
    where
        source_records.customer_id is not null
        and consents.occurred_at < {{ as_of_timestamp() }}
),

latest_consents as (
    {{ deduplicate('customer_consents', 'customer_id, purpose', 'occurred_at desc, consent_id desc') }}
),

final as (
    -- without a recorded decision the purpose's default applies
    select
        customers.customer_id,
        purposes.purpose,
        latest_consents.consent_status,
        latest_consents.occurred_at as decided_at,
        coalesce(latest_consents.consent_status, purposes.default_status) = 'granted' as is_granted
    from customers
    cross join purposes
    left join latest_consents
        on
            customers.customer_id = latest_consents.customer_id
            and purposes.purpose = latest_consents.purpose
)

select * from final
