-- grain: one row per CRM contact (contact_id), its most recently updated version
with source as (
    select * from {{ source('crm', 'crm_contacts') }}
    where {{ as_of_filter(to_utc('updated_at')) }}
),

latest_version as (
    {{ deduplicate('source', 'contact_id', 'updated_at desc, _loaded_at desc, _source_file, _source_line') }}
),

with_phones as (
    select
        latest_version.*,
        phone_numbers.phone_e164
    from latest_version
    {{ phone_lookup('latest_version.phone', 'latest_version.country') }}
),

final as (
    select
        cast(contact_id as {{ dbt.type_string() }}) as contact_id,
        {{ normalize_email('email') }} as email,
        {{ email_address('email') }} as email_original,
        {{ normalize_phone('phone_e164') }} as phone,
        {{ normalize_name('first_name') }} as first_name,
        {{ normalize_name('last_name') }} as last_name,
        {{ normalize_name('city') }} as city,
        {{ normalize_country('country') }} as country_code,
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_phones
    where contact_id is not null
)

select * from final
