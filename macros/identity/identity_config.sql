{#- Readers of the `identity` var block (dbt_project.yml), so models never parse it themselves. -#}

{% macro identity_types() -%}
    {#- The identifier types of var identity.identifier_types, plus the new types declared inputs
        bring (inputs/*.yml, macro declared_inputs()). A new type declared twice with different
        rules, or clashing with a configured type, is a compile error naming both. -#}
    {%- set configured = var('identity')['identifier_types'] -%}
    {%- set types = dict(configured) -%}
    {%- set declared_by = {} -%}
    {%- for entry in declared_inputs() -%}
        {%- for name, rules in (entry.get('identifier_types') or {}).items() -%}
            {%- set settings = {} -%}
            {%- for field, value in rules.items() if value is not none -%}
                {%- do settings.update({field: value}) -%}
            {%- endfor -%}
            {%- if name in configured -%}
                {{ exceptions.raise_compiler_error(
                    "declared input '" ~ entry.source ~ "' declares new identifier type '" ~ name
                    ~ "', which var identity.identifier_types already defines: drop its new_type") }}
            {%- elif name in declared_by and types[name] != settings -%}
                {{ exceptions.raise_compiler_error(
                    "declared inputs '" ~ declared_by[name] ~ "' and '" ~ entry.source
                    ~ "' declare new identifier type '" ~ name ~ "' with different rules: "
                    ~ types[name] ~ " vs " ~ settings) }}
            {%- endif -%}
            {%- do types.update({name: settings}) -%}
            {%- do declared_by.setdefault(name, entry.source) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(types) }}
{%- endmacro %}


{% macro identity_sources(links=none) -%}
    {#- The configured identity sources (var identity.sources), then every declared input (a
        linking source); links=true/false keeps only linking / lookup sources. -#}
    {%- set selected = [] -%}
    {%- for source in var('identity')['sources'] + declared_inputs() -%}
        {%- if links is none or (source.get('links', true) == links) -%}
            {%- do selected.append(source) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(selected) }}
{%- endmacro %}


{% macro identity_type_case(type_expr, field, default='null') -%}
    {#- A case expression giving one field of the identifier type named by `type_expr`. -#}
    case {{ type_expr }}
    {%- for name, settings in identity_types().items() %}
        {%- set value = settings.get(field) %}
        when '{{ name }}' then {{ default if value is none else (value | string | lower) }}
    {%- endfor %}
        else {{ default }}
    end
{%- endmacro %}


{% macro identity_types_where(field, value) -%}
    {#- A quoted, comma-separated list of the type names whose `field` equals `value`. -#}
    {%- set names = [] -%}
    {%- for name, settings in identity_types().items() -%}
        {%- if settings.get(field) == value -%}{%- do names.append("'" ~ name ~ "'") -%}{%- endif -%}
    {%- endfor -%}
    {{ return(names | join(', ') if names else "''") }}
{%- endmacro %}


{% macro identity_key(type_expr, value_expr) -%}
    {#- One text key per identifier node: `<type>:<value>`. -#}
    {{ dbt.concat([type_expr, "':'", value_expr]) }}
{%- endmacro %}


{% macro identity_node_id(type_expr, value_expr) -%}
    {#- The node id of an identifier: a hash of its key, so the same identifier has the same id in
        every run and on every engine (incremental re-stitching compares graphs between runs). -#}
    {{ hash_bigint(identity_key(type_expr, value_expr)) }}
{%- endmacro %}


{% macro identity_blocklist_filter(identifier_type, expr) -%}
    {#- `expr`, or null when its value is on the blocklist for `identifier_type`. -#}
    {%- set blocked = [] -%}
    {%- for entry in var('identity').get('blocklist') or [] -%}
        {%- if entry['identifier_type'] == identifier_type -%}
            {%- do blocked.append("'" ~ (entry['identifier_value'] | replace("'", "''")) ~ "'") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if blocked -%}
        case when {{ expr }} in ({{ blocked | join(', ') }}) then null else {{ expr }} end
    {%- else -%}
        {{ expr }}
    {%- endif -%}
{%- endmacro %}


{% macro identity_blocklist_values_sql() -%}
    {#- The blocklist as rows (identifier_type, identifier_value). -#}
    {%- set entries = var('identity').get('blocklist') or [] -%}
    {%- if entries -%}
        {%- for entry in entries %}
    select
        cast('{{ entry["identifier_type"] }}' as {{ dbt.type_string() }}) as identifier_type,
        cast('{{ entry["identifier_value"] | replace("'", "''") }}' as {{ dbt.type_string() }})
            as identifier_value
    {{ 'union all' if not loop.last }}
        {%- endfor -%}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as identifier_type,
        cast(null as {{ dbt.type_string() }}) as identifier_value
    where 1 = 0
    {%- endif -%}
{%- endmacro %}


{% macro identity_sorted_identifiers(source) -%}
    {#- The (type, column) pairs of a source's identifiers, strongest type first. -#}
    {%- set types = identity_types() -%}
    {%- set pairs = [] -%}
    {%- for identifier_type, column in source.identifiers.items() -%}
        {%- do pairs.append((types[identifier_type]['priority'], identifier_type, column)) -%}
    {%- endfor -%}
    {{ return(pairs | sort) }}
{%- endmacro %}


{% macro survivorship_rules() -%}
    {#- The rules of var survivorship, with every declared input carrying an attribute appended
        after the `sources:` list of its rule (lowest source priority: a declared input never
        overrides a listed source such as the CRM). -#}
    {%- set rules = {} -%}
    {%- for attribute, rule in var('survivorship').items() -%}
        {%- set merged = dict(rule) -%}
        {%- if rule.get('sources') -%}
            {%- set sources = rule['sources'] | list -%}
            {%- for entry in declared_inputs() -%}
                {%- if attribute in (entry.get('attributes') or {}) and entry.source not in sources -%}
                    {%- do sources.append(entry.source) -%}
                {%- endif -%}
            {%- endfor -%}
            {%- do merged.update({'sources': sources}) -%}
        {%- endif -%}
        {%- do rules.update({attribute: merged}) -%}
    {%- endfor -%}
    {{ return(rules) }}
{%- endmacro %}


{% macro identity_record_name_columns(source) -%}
    {#- person_name and last_name of a record of `source` (int_identity_identifiers_observed):
        lowercased first + last name and last name when the linking source has both attributes
        and the record both values, else NULL. -#}
    {%- set attributes = source.get('attributes') or {} -%}
    {%- if source.get('links', true) and attributes.get('first_name') and attributes.get('last_name') -%}
        {%- set named = attributes.first_name ~ ' is not null and ' ~ attributes.last_name ~ ' is not null' -%}
        case when {{ named }} then lower(trim({{ dbt.concat([attributes.first_name, "' '", attributes.last_name]) }})) end as person_name,
        case when {{ named }} then lower(trim({{ attributes.last_name }})) end as last_name
    {%- else -%}
        cast(null as {{ dbt.type_string() }}) as person_name,
        cast(null as {{ dbt.type_string() }}) as last_name
    {%- endif -%}
{%- endmacro %}
