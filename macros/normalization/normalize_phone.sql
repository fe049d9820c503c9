{#- Phone: E.164 text ('+14155550134'), NULL when too short/long or an obvious placeholder. -#}
{% macro normalize_phone(expr, default_country_code=none) -%}
    {%- set country = default_country_code or var('default_phone_country_code') -%}
    {%- set digits = regex_replace_all(expr, '[^0-9]', '') -%}
    {%- set has_plus = "(trim(" ~ expr ~ ") like '+%')" -%}
    {%- set e164 -%}
        case
            when {{ has_plus }} then '+' || {{ digits }}
            when {{ digits }} like '00%' then '+' || substr({{ digits }}, 3)
            when {{ digits }} like '0%' then '+{{ country }}' || substr({{ digits }}, 2)
            {%- if country | string == '1' %}
            when length({{ digits }}) = 11 and {{ digits }} like '1%' then '+' || {{ digits }}
            {%- endif %}
            else '+{{ country }}' || {{ digits }}
        end
    {%- endset -%}
    case
        when {{ expr }} is null or length({{ digits }}) < 7 then null
        when replace({{ digits }}, substr({{ digits }}, 1, 1), '') = '' then null
        when {{ digits }} in ('123456789', '1234567890', '12345678901', '0123456789', '987654321')
            then null
        when length({{ e164 }}) not between 9 and 16 then null
        else {{ e164 }}
    end
{%- endmacro %}
