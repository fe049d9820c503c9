-- grain: one row per source record and identifier found in it (identity sources of var `identity`)
-- person_name and last_name: the name the record gives (first and last name attributes of a
-- linking source, both present), read here in the one pass over the staging views identity
-- makes; int_identity_record_names takes them from this table.
{%- set types = identity_types() %}

with
{%- for source in identity_sources() %}
    {{ source.source }} as (
        select * from {{ ref(source.model) }}
    ),
{%- endfor %}

suppressed_identifiers as (
    -- people who asked to be erased or suppressed: their identifiers never enter the graph again
    select identifier_hash from {{ ref('int_privacy_suppressed_identifiers') }}
),

observed as (
    {%- for source in identity_sources() %}
        {%- set outer_loop = loop %}
        {%- if source.get('identifier_type_column') %}
            {{ 'union all' if not outer_loop.first }}
            select
                '{{ source.source }}' as source,
                cast({{ source.record_id }} as {{ dbt.type_string() }}) as source_record_id,
                cast({{ source.identifier_type_column }} as {{ dbt.type_string() }}) as identifier_type,
                cast({{ source.identifier_value_column }} as {{ dbt.type_string() }}) as identifier_value,
                cast({{ source.seen_at }} as {{ dbt.type_timestamp() }}) as seen_at,
                {{ 'true' if source.get('links', true) else 'false' }} as is_linking,
                {{ identity_record_name_columns(source) }}
            from {{ source.source }}
            where {{ source.identifier_type_column }} in (
                {%- for name in types %}                    '{{ name }}'{{ ', ' if not loop.last }}                                        {% endfor -%}
            )
        {%- else %}
            {%- for identifier_type, column in source.identifiers.items() %}
                                {{ 'union all' if not (outer_loop.first and loop.first) }}
                select
                    '{{ source.source }}' as source,
                    cast({{ source.record_id }} as {{ dbt.type_string() }}) as source_record_id,
                    '{{ identifier_type }}' as identifier_type,
                    cast({{ column }} as {{ dbt.type_string() }}) as identifier_value,
                    cast({{ source.seen_at }} as {{ dbt.type_timestamp() }}) as seen_at,
                    {{ 'true' if source.get('links', true) else 'false' }} as is_linking,
                    {{ identity_record_name_columns(source) }}
                from {{ source.source }}
            {%- endfor %}
        {%- endif %}
    {%- endfor %}
),

final as (
    select distinct
        source,
        source_record_id,
        identifier_type,
        identifier_value,
        seen_at,
        is_linking,
        person_name,
        last_name
    from observed
    where
        identifier_value is not null
        and source_record_id is not null
        and {{ privacy_hash('identifier_value') }} not in (
            select suppressed_identifiers.identifier_hash from suppressed_identifiers
        )
)

select * from final
