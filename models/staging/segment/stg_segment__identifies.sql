-- grain: one row per identify call (identify_id)
with source as (
    select * from {{ source('segment', 'segment_identifies') }}
),

deduplicated as (
    {{ deduplicate('source', 'id', '_loaded_at desc, _source_file, _source_line') }}
),

with_phones as (
    {{ select_with_phone_e164('deduplicated', 'phone') }}
),

with_addresses as (
    {{ select_with_email_mailbox('with_phones', 'email') }}
),

final as (
    select
        cast(id as {{ dbt.type_string() }}) as identify_id,
        {{ normalize_identifier('anonymous_id') }} as anonymous_id,
        {{ normalize_identifier('user_id') }} as user_id,
        email_mailbox as email,
        email_original,
        {{ normalize_phone('phone_e164') }} as phone,
        {{ normalize_name('first_name') }} as first_name,
        {{ normalize_name('last_name') }} as last_name,
        {{ to_utc(adapter.quote('timestamp')) }} as occurred_at,
        {{ to_utc('received_at') }} as received_at,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_addresses
    where
        id is not null
        and {{ as_of_filter(to_utc(adapter.quote('timestamp'))) }}
)

select * from final
