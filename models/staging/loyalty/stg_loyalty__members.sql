-- grain: one row per loyalty member (loyalty_id)
with source as (
    select * from {{ source('loyalty', 'loyalty_members') }}
    where {{ as_of_filter(to_utc('joined_at')) }}
),

deduplicated as (
    {{ deduplicate('source', 'loyalty_id', '_loaded_at desc, _source_file, _source_line') }}
),

with_phones as (
    {{ select_with_phone_e164('deduplicated', 'phone') }}
),

with_addresses as (
    {{ select_with_email_mailbox('with_phones', 'email') }}
),

final as (
    select
        {{ normalize_identifier('loyalty_id') }} as loyalty_id,
        email_mailbox as email,
        email_original,
        {{ normalize_phone('phone_e164') }} as phone,
        {{ normalize_name('first_name') }} as first_name,
        {{ normalize_name('last_name') }} as last_name,
        {{ normalize_code('tier') }} as loyalty_tier,
        {{ to_utc('joined_at') }} as joined_at,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_addresses
    where {{ normalize_identifier('loyalty_id') }} is not null
)

select * from final
