{#- Email: trimmed, lowercased, NULL when not a syntactically valid address or a known placeholder. -#}
{% macro normalize_email(expr) -%}
    {%- set cleaned = 'lower(trim(' ~ expr ~ '))' -%}
    case
        when {{ cleaned }} is null then null
        when not {{ regex_matches(cleaned, "^[a-z0-9._%+''-]+@[a-z0-9-]+([.][a-z0-9-]+)*[.][a-z]{2,}$") }}
            then null
        when {{ cleaned }} in ({{ sql_string_list(var('placeholder_emails')) }}) then null
        when split_part({{ cleaned }}, '@', 1) in ({{ sql_string_list(var('placeholder_email_local_parts')) }})
            then null
        when split_part({{ cleaned }}, '@', 2) in ({{ sql_string_list(var('placeholder_email_domains')) }})
            then null
        else {{ cleaned }}
    end
{%- endmacro %}


{% macro sql_string_list(values) -%}
    {%- for value in values -%}
        '{{ value | replace("'", "''") }}'{% if not loop.last %}, {% endif %}
    {%- endfor -%}
{%- endmacro %}
