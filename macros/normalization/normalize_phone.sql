{#- Phone: E.164 text ('+14155550134') from the lookup raw._phone_numbers, which
    orchestration/phones.py fills with libphonenumber (record's own country, else var
    `default_phone_country_code`; var `phone_numbers.require`). SQL cannot parse numbering plans
    portably, so staging joins the lookup in a CTE (`phone_lookup`, adding `phone_e164`) and reads
    the result (`normalize_phone`): NULL for a number the library rejects or never saw. -#}
{% macro phone_lookup(phone_expr, country_expr=none, alias='phone_numbers', type_expr=none) -%}
    left join {{ source('phone', '_phone_numbers') }} as {{ alias }}
        on {{ alias }}.phone_raw = cast({{ phone_expr }} as {{ dbt.type_string() }})
        and {{ alias }}.country_raw =
        {%- if country_expr %} coalesce(cast({{ country_expr }} as {{ dbt.type_string() }}), '')
        {%- else %} ''
        {%- endif %}
        {%- if type_expr %}
        and lower(trim({{ type_expr }})) = 'phone'
        {%- endif %}
{%- endmacro %}



{#- A CTE body: every column of `relation` and `phone_e164`, the lookup's E.164 form of
    `phone_column` (read in the record's `country_column` when the source has one; with
    `type_column`, only where that column says 'phone'). -#}
{% macro select_with_phone_e164(relation, phone_column, country_column=none, type_column=none) -%}
    select
        {{ relation }}.*,
        phone_numbers.phone_e164
    from {{ relation }}
    {{ phone_lookup(
        relation ~ '.' ~ phone_column,
        (relation ~ '.' ~ country_column) if country_column else none,
        type_expr=(relation ~ '.' ~ type_column) if type_column else none) }}
{%- endmacro %}

{% macro normalize_phone(e164_column='phone_e164') -%}
    {#- The lookup's E.164 column, joined by phone_lookup (the name says what the column holds). -#}
    {{ e164_column }}
{%- endmacro %}
