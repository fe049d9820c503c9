-- grain: one row per data-subject request (request_id)
with source as (
    select * from {{ source('privacy', 'privacy_requests') }}
),

deduplicated as (
    {{ deduplicate('source', 'request_id', '_loaded_at desc, _source_file, _source_line') }}
),

with_phones as (
    {{ select_with_phone_e164('deduplicated', 'identifier_value', type_column='identifier_type') }}
),

with_addresses as (
    {{ select_with_email_address('with_phones', 'identifier_value') }}
),

final as (
    select
        cast(request_id as {{ dbt.type_string() }}) as request_id,
        {{ normalize_code('identifier_type') }} as identifier_type,
        {{ normalize_identifier_by_type(
            'identifier_type', 'identifier_value', address_column='email_original'
        ) }} as identifier_value,
        {{ normalize_code('request_type') }} as request_type,
        {{ to_utc('received_at') }} as received_at,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_addresses
    where
        request_id is not null
        and {{ as_of_filter(to_utc('received_at')) }}
)

select * from final
