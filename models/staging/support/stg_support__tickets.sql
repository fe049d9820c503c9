-- grain: one row per support ticket (ticket_id)
with source as (
    select * from {{ source('support', 'support_tickets') }}
),

deduplicated as (
    {{ deduplicate('source', 'ticket_id', '_loaded_at desc, _source_file, _source_line') }}
),

with_phones as (
    select
        deduplicated.*,
        phone_numbers.phone_e164
    from deduplicated
    {{ phone_lookup('deduplicated.requester_phone') }}
),

final as (
    select
        cast(ticket_id as {{ dbt.type_string() }}) as ticket_id,
        {{ normalize_email('requester_email') }} as email,
        {{ email_address('requester_email') }} as email_original,
        {{ normalize_phone('phone_e164') }} as phone,
        {{ normalize_code('channel') }} as channel,
        {{ normalize_code('status') }} as ticket_status,
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('solved_at') }} as solved_at,
        case when csat between 1 and 5 then cast(csat as integer) end as csat,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_phones
    where
        ticket_id is not null
        and {{ as_of_filter(to_utc('created_at')) }}
)

select * from final
