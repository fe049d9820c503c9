-- grain: one row per loyalty member (loyalty_id)
with source as (
    select * from {{ source('loyalty', 'loyalty_members') }}
    where {{ as_of_filter(to_utc('joined_at')) }}
),

deduplicated as (
    {{ deduplicate('source', 'loyalty_id', '_loaded_at desc, _source_file, _source_line') }}
),

with_phones as (
    select
        deduplicated.*,
        phone_numbers.phone_e164
    from deduplicated
    {{ phone_lookup('deduplicated.phone') }}
),

final as (
    select
        {{ normalize_identifier('loyalty_id') }} as loyalty_id,
        {{ normalize_email('email') }} as email,
        {{ email_address('email') }} as email_original,
        {{ normalize_phone('phone_e164') }} as phone,
        {{ normalize_name('first_name') }} as first_name,
        {{ normalize_name('last_name') }} as last_name,
        {{ normalize_code('tier') }} as loyalty_tier,
        {{ to_utc('joined_at') }} as joined_at,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_phones
    where {{ normalize_identifier('loyalty_id') }} is not null
)

select * from final
