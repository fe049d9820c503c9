-- grain: one row per consent decision attached to a customer (decision_id)
-- Decisions come from the consents source (granted or denied, any purpose, any identifier) and
-- from email events that withdraw email_marketing for their address (unsubscribe, spam report).
-- Records reach a customer through int_source_records_assigned (the identity graph).
{#- Declared inputs (inputs/*.yml): a record's consent_<purpose> columns are decisions too, at
    its occurred_at (true granted, false denied, null none), one per identifier of the record
    (decision_id '<input>:<record_id>:<type>:<purpose>'), so per-identifier precedence and erasure
    apply. (A jinja comment: with no input declared the compiled SQL is the built-in one.) #}
{%- set consent_inputs = [] %}
{%- for entry in declared_inputs() if entry.get('consents') %}
    {%- do consent_inputs.append(entry) %}
{%- endfor %}
with consents as (
    select * from {{ ref('stg_consent__consents') }}
),

email_events as (
    select * from {{ ref('stg_email__events') }}
),

source_records as (
    select * from {{ ref('int_source_records_assigned') }}
),
{%- for entry in consent_inputs %}

    {{ entry.source }} as (
        select * from {{ ref(entry.model) }}
    ),

    {{ entry.source }}_decisions as (
        {%- set state = namespace(first=true) %}
        {%- for purpose, column in entry.consents.items() %}
            {%- for identifier_type, identifier_column in entry.identifiers.items() %}
                {{ 'union all' if not state.first }}
                {%- set state.first = false %}
                select
                    {{ dbt.concat([
                        "'" ~ entry.source ~ ":'",
                        'cast(' ~ entry.source ~ '.' ~ entry.record_id ~ ' as '
                        ~ dbt.type_string() ~ ')',
                        "':" ~ identifier_type ~ ":" ~ purpose ~ "'",
                    ]) }} as decision_id,
                    source_records.customer_id,
                    '{{ identifier_type }}' as identifier_type,
                    cast({{ entry.source }}.{{ identifier_column }} as {{ dbt.type_string() }})
                        as identifier_value,
                    '{{ purpose }}' as purpose,
                    case
                        when {{ entry.source }}.{{ column }} then 'granted'
                        when not {{ entry.source }}.{{ column }} then 'denied'
                    end as consent_status,
                    cast({{ entry.source }}.{{ entry.seen_at }} as {{ dbt.type_timestamp() }})
                        as decided_at,
                    '{{ entry.source }}' as decision_source
                from {{ entry.source }}
                inner join source_records
                    on
                        source_records.source = '{{ entry.source }}'
                        and cast({{ entry.source }}.{{ entry.record_id }} as {{ dbt.type_string() }})
                        = source_records.source_record_id
                where
                    {{ entry.source }}.{{ identifier_column }} is not null
                    and {{ entry.source }}.{{ column }} is not null
            {%- endfor %}
        {%- endfor %}
    ),
{%- endfor %}

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
    {%- for entry in consent_inputs %}
        union all
        select * from {{ entry.source }}_decisions
    {%- endfor %}
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
