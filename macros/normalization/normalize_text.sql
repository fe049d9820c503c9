{#- Names, identifiers, codes and free text: trimmed, junk values to NULL. -#}

{% macro junk_values() -%}
    '', 'null', 'none', 'n/a', 'na', 'nan', 'undefined', 'unknown', '-', '0', '-1', 'test'
{%- endmacro %}


{% macro normalize_identifier(expr) -%}
    case
        when lower(trim({{ expr }})) in ({{ junk_values() }}) then null
        else trim({{ expr }})
    end
{%- endmacro %}


{% macro normalize_name(expr) -%}
    {%- set collapsed = regex_replace_all('trim(' ~ expr ~ ')', ' +', ' ') -%}
    case
        when lower(trim({{ expr }})) in ({{ junk_values() }}, 'test test', 'xxx', 'asdf') then null
        else {{ title_case(collapsed) }}
    end
{%- endmacro %}


{% macro title_case(expr) -%}
    {#- Every part of a name upper-cased on its first letter and lower-cased after it, parts being
        separated by a space, a hyphen or an apostrophe (O'Brien, Anne-Marie, Müller), the same
        on every engine: initcap differs (PostgreSQL splits at any non-alphanumeric character,
        Spark only at spaces). -#}
    {{ return(adapter.dispatch('title_case', 'cdp')(expr)) }}
{%- endmacro %}

{% macro default__title_case(expr) -%}
    array_to_string(
        list_transform(
            string_split(lower({{ expr }}), ' '),
            lambda word: array_to_string(
                list_transform(
                    string_split(word, '-'),
                    lambda part: array_to_string(
                        list_transform(
                            string_split(part, chr(39)),
                            lambda piece: upper(substr(piece, 1, 1)) || substr(piece, 2)
                        ),
                        chr(39)
                    )
                ),
                '-'
            )
        ),
        ' '
    )
{%- endmacro %}

{% macro spark__title_case(expr) -%}
    array_join(
        transform(
            split(lower({{ expr }}), ' ', -1),
            word -> array_join(
                transform(
                    split(word, '-', -1),
                    part -> array_join(
                        transform(
                            split(part, chr(39), -1),
                            piece -> concat(upper(substr(piece, 1, 1)), substr(piece, 2))
                        ),
                        chr(39)
                    )
                ),
                '-'
            )
        ),
        ' '
    )
{%- endmacro %}

{% macro postgres__title_case(expr) -%}
    (
        select string_agg(upper(left(parts.m[1], 1)) || substr(parts.m[1], 2) || parts.m[2], ''
            order by parts.n)
        from regexp_matches(lower({{ expr }}), '([^ ''-]*)([ ''-]?)', 'g')
            with ordinality as parts (m, n)
    )
{%- endmacro %}


{% macro normalize_code(expr) -%}
    {#- Lower-case category codes such as statuses and event types. -#}
    nullif(lower(trim({{ expr }})), '')
{%- endmacro %}


{% macro normalize_currency(expr) -%}
    case
        when trim({{ expr }}) in ('$', 'US$') then 'USD'
        when trim({{ expr }}) = '€' then 'EUR'
        when trim({{ expr }}) = '£' then 'GBP'
        when {{ regex_matches('upper(trim(' ~ expr ~ '))', '^[A-Z]{3}$') }} then upper(trim({{ expr }}))
    end
{%- endmacro %}


{% macro normalize_country(expr) -%}
    {%- set cleaned = 'upper(trim(' ~ expr ~ '))' -%}
    case
        {%- for alias, code in var('country_aliases').items() %}
        when {{ cleaned }} = '{{ alias | upper }}' then '{{ code }}'
        {%- endfor %}
        when {{ regex_matches(cleaned, '^[A-Z]{2}$') }} then {{ cleaned }}
    end
{%- endmacro %}


{% macro normalize_identifier_by_type(
    type_expr, value_expr, e164_column='phone_e164', address_column=none, mailbox_column=none
) -%}
    {#- Normalise a value according to the identifier type named beside it (consents, requests);
        phones are the lookup's `e164_column` (macro phone_lookup with type_expr), emails the
        `mailbox_column` the model computed (select_with_email_mailbox), or the mailbox of
        `address_column` when the model parsed the value once (select_with_email_address), else
        of the value itself. -#}
    case lower(trim({{ type_expr }}))
        when 'email' then
            {%- if mailbox_column %} {{ mailbox_column }}
            {%- elif address_column %} {{ email_mailbox(address_column) }}
            {%- else %} {{ normalize_email(value_expr) }}
            {%- endif %}
        when 'phone' then {{ normalize_phone(e164_column) }}
        else {{ normalize_identifier(value_expr) }}
    end
{%- endmacro %}
