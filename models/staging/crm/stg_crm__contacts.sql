-- grain: one row per CRM contact (contact_id), its most recently updated version
with source as (
    select * from {{ source('crm', 'crm_contacts') }}
    where {{ as_of_filter(to_utc('updated_at')) }}
),

latest_version as (
    {{ deduplicate('source', 'contact_id', 'updated_at desc, _loaded_at desc, _source_file, _source_line') }}
),

with_phones as (
    {{ select_with_phone_e164('latest_version', 'phone', 'country') }}
),

with_addresses as (
    {{ select_with_email_mailbox('with_phones', 'email') }}
),

final as (
    select
        cast(contact_id as {{ dbt.type_string() }}) as contact_id,
        email_mailbox as email,
        email_original,
        {{ normalize_phone('phone_e164') }} as phone,
        {{ normalize_name('first_name') }} as first_name,
        {{ normalize_name('last_name') }} as last_name,
        {{ normalize_name('city') }} as city,
        {{ normalize_country('country') }} as country_code,
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_addresses
    where contact_id is not null
)

select * from final
