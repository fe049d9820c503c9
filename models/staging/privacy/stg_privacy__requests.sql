-- grain: one row per data-subject request (request_id)
-- Rectifications carry `attribute` (a var survivorship attribute) and `new_value` (trimmed);
-- `new_value_is_valid` says whether it is one (an email attribute's value must be an address).
{%- set rules = survivorship_rules() %}
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

with_new_addresses as (
    -- a rectification's new value parsed as an address once (emails: its mailbox below)
    select
        with_addresses.*,
        {{ email_address('with_addresses.new_value') }} as new_value_address
    from with_addresses
),

final as (
    select
        cast(request_id as {{ dbt.type_string() }}) as request_id,
        {{ normalize_code('identifier_type') }} as identifier_type,
        {{ normalize_identifier_by_type(
            'identifier_type', 'identifier_value', address_column='email_original'
        ) }} as identifier_value,
        {{ normalize_code('request_type') }} as request_type,
        {{ normalize_code('attribute') }} as attribute,  -- noqa: RF04
        nullif(trim(cast(new_value as {{ dbt.type_string() }})), '') as new_value,
        -- the value as given (macro rectification_candidates normalises an email's mailbox):
        -- two mailbox expressions in one view trip a DuckDB binder bug in the privacy scans
        case
            {%- for attribute, rule in rules.items() if rule.get('normalise') == 'email' %}
                when {{ normalize_code('attribute') }} = '{{ attribute }}'
                    then {{ email_mailbox('new_value_address') }} is not null
            {%- endfor %}
            else nullif(trim(cast(new_value as {{ dbt.type_string() }})), '') is not null
        end as new_value_is_valid,
        {{ to_utc('received_at') }} as received_at,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_new_addresses
    where
        request_id is not null
        and {{ as_of_filter(to_utc('received_at')) }}
)

select * from final
