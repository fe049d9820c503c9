-- grain: one row per email service provider event (email_event_id)
with source as (
    select * from {{ source('email', 'email_events') }}
),

deduplicated as (
    {{ deduplicate('source', 'event_id', '_loaded_at desc, _source_file, _source_line') }}
),

final as (
    select
        cast(event_id as {{ dbt.type_string() }}) as email_event_id,
        {{ normalize_email('email') }} as email,
        {{ email_address('email') }} as email_original,
        {{ normalize_identifier('campaign_id') }} as campaign_id,
        {{ normalize_code('event_type') }} as event_type,
        {{ to_utc('occurred_at') }} as occurred_at,
        {{ to_utc('_loaded_at') }} as loaded_at
    from deduplicated
    where
        event_id is not null
        and {{ as_of_filter(to_utc('occurred_at')) }}
)

select * from final
