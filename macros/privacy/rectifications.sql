{#- The latest correction per customer and attribute in privacy.rectifications (written by the
    privacy asset, orchestration/privacy/rectification.py), as survivorship candidates of source
    `privacy_rectification` (an email attribute's value as its mailbox, as staging gives
    every other source's emails); no rows while the table does not exist yet. -#}
{% macro rectification_candidates() -%}
    {%- set relation = adapter.get_relation(
        database=target.database, schema='privacy', identifier='rectifications') -%}
    {%- if execute and relation is not none -%}
        select
            customer_id,
            'privacy_rectification' as source,
            cast(request_id as {{ dbt.type_string() }}) as source_record_id,
            attribute,
            case
                {%- for attribute, rule in survivorship_rules().items()
                    if rule.get('normalise') == 'email' %}
                    when attribute = '{{ attribute }}' then {{ email_mailbox('new_value_address') }}
                {%- endfor %}
                else cast(new_value as {{ dbt.type_string() }})
            end as attribute_value,
            cast(received_at as {{ dbt.type_timestamp() }}) as observed_at
        from (
            select
                corrections.*,
                {{ email_address('corrections.new_value') }} as new_value_address,
                row_number() over (
                    partition by customer_id, attribute
                    order by received_at desc, request_id desc
                ) as correction_rank
            from {{ relation }} as corrections
        ) as ranked
        where correction_rank = 1
    {%- else -%}
        select
            cast(null as {{ dbt.type_string() }}) as customer_id,
            cast(null as {{ dbt.type_string() }}) as source,
            cast(null as {{ dbt.type_string() }}) as source_record_id,
            cast(null as {{ dbt.type_string() }}) as attribute,
            cast(null as {{ dbt.type_string() }}) as attribute_value,
            cast(null as {{ dbt.type_timestamp() }}) as observed_at
        where 1 = 0
    {%- endif -%}
{%- endmacro %}
