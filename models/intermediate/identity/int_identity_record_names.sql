-- grain: one row per linking source record that carries a person's name (source, source_record_id)
-- The name a record gives (first and last name attributes of var identity.sources, lowercased,
-- and the last name alone):
-- noqa: disable=RF04
-- (`source` is the column name of every identity model)
-- evidence for junk detection (one email, many names) and for the shared-identifier rule (two
-- profiles with different names are different people).
-- A view (a table on Spark): a stored copy would keep an erased person's name, which the erasure
-- finds only through identifier values and customer ids (orchestration/privacy.py scrub_derived).
{{ config(materialized=shared_view_materialization()) }}
{%- set named = [] %}
{%- for source in identity_sources(links=true) %}
    {%- set attributes = source.get('attributes') or {} %}
    {%- if attributes.get('first_name') and attributes.get('last_name') %}
        {%- do named.append(source) %}
    {%- endif %}
{%- endfor %}

with
{%- for source in named %}
    {{ source.source }} as (
        select * from {{ ref(source.model) }}
    ),
{%- endfor %}

named_records as (
    {%- for source in named %}
        {{ 'union all' if not loop.first }}
        select
            '{{ source.source }}' as source,
            cast({{ source.record_id }} as {{ dbt.type_string() }}) as source_record_id,
            lower(trim({{ dbt.concat([
                source.attributes.first_name, "' '", source.attributes.last_name,
            ]) }})) as person_name,
            lower(trim({{ source.attributes.last_name }})) as last_name
        from {{ source.source }}
        where
            {{ source.attributes.first_name }} is not null
            and {{ source.attributes.last_name }} is not null
    {%- endfor %}
),

final as (
    select distinct
        source,
        source_record_id,
        person_name,
        last_name
    from named_records
    where source_record_id is not null
)

select * from final
