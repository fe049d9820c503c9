-- grain: one row per consent decision (consent_id)
with source as (
    select
        *,
        coalesce(
            consent_id,
            md5(_source_file || ':' || cast(_source_line as {{ dbt.type_string() }}))
        ) as resolved_consent_id
    from {{ source('consent', 'consents') }}
),

deduplicated as (
    {{ deduplicate('source', 'resolved_consent_id', '_loaded_at desc, _source_file, _source_line') }}
),

with_phones as (
    {{ select_with_phone_e164('deduplicated', 'identifier_value', type_column='identifier_type') }}
),

with_addresses as (
    {{ select_with_email_mailbox('with_phones', 'identifier_value') }}
),

final as (
    select
        cast(resolved_consent_id as {{ dbt.type_string() }}) as consent_id,
        {{ normalize_code('identifier_type') }} as identifier_type,
        {{ normalize_identifier_by_type(
            'identifier_type', 'identifier_value', mailbox_column='email_mailbox'
        ) }} as identifier_value,
        {{ normalize_code('purpose') }} as purpose,
        {{ normalize_code('status') }} as consent_status,
        {{ to_utc('occurred_at') }} as occurred_at,
        {{ normalize_code('source') }} as consent_source,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_addresses
    where {{ as_of_filter(to_utc('occurred_at')) }}
)

select * from final
