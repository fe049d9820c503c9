-- grain: one row per email service provider event (email_event_id)
with source as (
    select * from {{ source('email', 'email_events') }}
),

deduplicated as (
    {{ deduplicate('source', 'event_id', '_loaded_at desc, _source_file, _source_line') }}
),

with_addresses as (
    {{ select_with_email_mailbox('deduplicated', 'email') }}
),

final as (
    select
        cast(event_id as {{ dbt.type_string() }}) as email_event_id,
        email_mailbox as email,
        email_original,
        {{ normalize_identifier('campaign_id') }} as campaign_id,
        {{ normalize_code('event_type') }} as event_type,
        {{ to_utc('occurred_at') }} as occurred_at,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_addresses
    where
        event_id is not null
        and {{ as_of_filter(to_utc('occurred_at')) }}
)

select * from final
