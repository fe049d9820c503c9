-- grain: one row per consent decision attached to a customer (decision_id)
-- Decisions come from the consents source (granted or denied, any purpose, any identifier) and
-- from email events that withdraw email_marketing for their address (unsubscribe, spam report).
-- Records reach a customer through int_source_records_assigned (the identity graph).
with consents as (
    select * from {{ ref('stg_consent__consents') }}
),

email_events as (
    select * from {{ ref('stg_email__events') }}
),

source_records as (
    select * from {{ ref('int_source_records_assigned') }}
),

consent_decisions as (
    select
        {{ dbt.concat(["'consents:'", 'consents.consent_id']) }} as decision_id,
        source_records.customer_id,
        consents.identifier_type,
        consents.identifier_value,
        consents.purpose,
        consents.consent_status,
        consents.occurred_at as decided_at,
        coalesce(consents.consent_source, 'consents') as decision_source
    from consents
    inner join source_records
        on
            source_records.source = 'consents'
            and consents.consent_id = source_records.source_record_id
    where consents.consent_status in ('granted', 'denied')
),

email_withdrawals as (
    select
        {{ dbt.concat(["'email_events:'", 'email_events.email_event_id']) }} as decision_id,
        source_records.customer_id,
        'email' as identifier_type,
        email_events.email as identifier_value,
        'email_marketing' as purpose,
        'denied' as consent_status,
        email_events.occurred_at as decided_at,
        {{ dbt.concat(["'email_'", 'email_events.event_type']) }} as decision_source
    from email_events
    inner join source_records
        on
            source_records.source = 'email_events'
            and email_events.email_event_id = source_records.source_record_id
    where email_events.event_type in (
        {%- for event_type in consent_withdrawing_email_events() -%}
            '{{ event_type }}'{{ ', ' if not loop.last }}
        {%- endfor -%}
    )
),

unioned as (
    select * from consent_decisions
    union all
    select * from email_withdrawals
),

final as (
    select * from unioned
    where
        customer_id is not null
        and purpose is not null
        and decided_at is not null
        and decided_at < {{ as_of_timestamp() }}
)

select * from final
