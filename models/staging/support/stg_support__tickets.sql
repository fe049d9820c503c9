-- grain: one row per support ticket (ticket_id)
with source as (
    select * from {{ source('support', 'support_tickets') }}
),

deduplicated as (
    {{ deduplicate('source', 'ticket_id', '_loaded_at desc, _source_file, _source_line') }}
),

with_phones as (
    {{ select_with_phone_e164('deduplicated', 'requester_phone') }}
),

with_addresses as (
    {{ select_with_email_mailbox('with_phones', 'requester_email') }}
),

final as (
    select
        cast(ticket_id as {{ dbt.type_string() }}) as ticket_id,
        email_mailbox as email,
        email_original,
        {{ normalize_phone('phone_e164') }} as phone,
        {{ normalize_code('channel') }} as channel,
        {{ normalize_code('status') }} as ticket_status,
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('solved_at') }} as solved_at,
        case when csat between 1 and 5 then cast(csat as integer) end as csat,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_addresses
    where
        ticket_id is not null
        and {{ as_of_filter(to_utc('created_at')) }}
)

select * from final
