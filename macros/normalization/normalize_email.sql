{#- Email: the mailbox a spelling reaches, NULL when not a valid address or a known placeholder.
    Display-name (`Ana Kim <ana@x.com>`) and `mailto:` forms are parsed, whitespace and trailing
    dots removed, everything lowercased (unicode domains included); then the provider rules of
    var `email_normalisation` (macro email_mailbox). For one column of a model, parse once
    (`email_address` in a CTE, as `email_original`) and apply `email_mailbox` to that column:
    the address expression is long and the rules read it many times. -#}
{% macro normalize_email(expr) -%}
    {{ email_mailbox(email_address(expr)) }}
{%- endmacro %}


{#- The provider rules of var `email_normalisation` on an address already parsed by
    `email_address` (a column, ideally: it is read several times): domain aliases
    (googlemail.com -> gmail.com), `+tag` removed for providers that document plus addressing,
    dots removed where the provider ignores them; NULL unless it matches var `email_pattern` or
    when a known placeholder. The rules are three steps (email_domain, email_local,
    email_mailbox_of); in one expression each step repeats the ones before it, so a model that
    normalises a whole column computes them as columns, one step per select
    (select_with_email_mailbox). -#}
{% macro email_mailbox(address) -%}
    {%- set domain = email_domain(address) -%}
    {{ email_mailbox_of(address, email_local(address, domain), domain) }}
{%- endmacro %}


{#- The canonical domain of a parsed address (var email_normalisation.domain_aliases). -#}
{% macro email_domain(address) -%}
    {%- set rules = var('email_normalisation') -%}
    {%- set domain_written = "split_part(" ~ address ~ ", '@', 2)" -%}
    {%- if rules.domain_aliases -%}
    {#- `in`, not `=`: DuckDB 2.0 fails to bind `split_part(col, '@', 2) = 'x'` when the
        column's statistics say it is all NULL (a shop export without emails) -#}
    case
        {%- for alias, canonical in rules.domain_aliases.items() %}
        when {{ domain_written }} in ('{{ alias | lower }}') then '{{ canonical | lower }}'
        {%- endfor %}
        else {{ domain_written }}
    end
    {%- else -%}
    {{ domain_written }}
    {%- endif -%}
{%- endmacro %}


{#- The local part of a parsed address once the provider of `domain` (its canonical domain)
    has its rules applied: `+tag` removed, dots removed. -#}
{% macro email_local(address, domain) -%}
    {%- set rules = var('email_normalisation') -%}
    {%- set local_written = "split_part(" ~ address ~ ", '@', 1)" -%}
    {%- set local_untagged -%}
        case
            when ({{ domain }}) in ({{ sql_string_list(rules.subaddress_domains or ['']) }})
                then split_part({{ local_written }}, '+', 1)
            else {{ local_written }}
        end
    {%- endset -%}
    case
        when ({{ domain }}) in ({{ sql_string_list(rules.dots_ignored_domains or ['']) }})
            then replace({{ local_untagged }}, '.', '')
        else {{ local_untagged }}
    end
{%- endmacro %}


{#- The mailbox of a parsed address from its normalised local part and domain, or NULL
    (no valid address, a placeholder). -#}
{% macro email_mailbox_of(address, local, domain) -%}
    {%- set mailbox = "(" ~ local ~ ") || '@' || (" ~ domain ~ ")" -%}
    case
        when {{ address }} is null then null
        when not {{ regex_matches(address, var('email_pattern') | replace("'", "''")) }}
            then null
        when ({{ local }}) in ('') then null
        when {{ mailbox }} in ({{ sql_string_list(var('placeholder_emails')) }}) then null
        when ({{ local }}) in ({{ sql_string_list(var('placeholder_email_local_parts')) }})
            then null
        when ({{ domain }}) in ({{ sql_string_list(var('placeholder_email_domains')) }})
            then null
        else {{ mailbox }}
    end
{%- endmacro %}


{#- The address as written, parsed out of display-name and mailto: forms: trimmed, lowercased,
    trailing dots removed, before any provider rule (kept as `email_original` in staging). -#}
{% macro email_address(expr) -%}
    {%- set inside_brackets = "split_part(split_part(" ~ expr ~ ", '<', -1), '>', 1)" -%}
    {%- set without_mailto = "split_part(replace(lower(trim(" ~ inside_brackets ~ ")), 'mailto:', ''), '?', 1)" -%}
    nullif({{ regex_replace_all('trim(' ~ without_mailto ~ ')', '[.]+$', '') }}, '')
{%- endmacro %}


{% macro sql_string_list(values) -%}
    {%- for value in values -%}
        '{{ value | replace("'", "''") }}'{% if not loop.last %}, {% endif %}
    {%- endfor -%}
{%- endmacro %}


{#- A CTE body: every column of `relation` and `email_original`, the address of `email_column`
    parsed once (`email_address`); the model then reads `email_mailbox('email_original')`. -#}
{% macro select_with_email_address(relation, email_column) -%}
    select
        {{ relation }}.*,
        {{ email_address(relation ~ '.' ~ email_column) }} as email_original
    from {{ relation }}
{%- endmacro %}


{#- A CTE body: every column of `relation`, `email_original` (the address of `email_column`
    parsed once, `email_address`) and `email_mailbox` (its mailbox, `email_mailbox`), each rule
    step computed once per row in a select of its own (`_email_domain`, `_email_local`). -#}
{% macro select_with_email_mailbox(relation, email_column) -%}
    select
        with_email_local.*,
        {{ email_mailbox_of('email_original', '_email_local', '_email_domain') }} as email_mailbox
    from (
        select
            with_email_domain.*,
            {{ email_local('email_original', '_email_domain') }} as _email_local
        from (
            select
                with_email_original.*,
                {{ email_domain('email_original') }} as _email_domain
            from (
                {{ select_with_email_address(relation, email_column) | indent(16) }}
            ) as with_email_original
        ) as with_email_domain
    ) as with_email_local
{%- endmacro %}
