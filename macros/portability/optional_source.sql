{#- A source that a Python asset writes after dbt first runs, read as "the table, or nothing":
    `select * from` the source's relation when it exists at run time, else zero rows with the
    given columns typed (`columns`: name -> SQL type, in order). source() is always called, so
    the lineage (and Dagster's asset order) stays that of a plain source. -#}
{% macro optional_source(source_name, table_name, columns) -%}
    {{ return(adapter.dispatch('optional_source', 'cdp')(source_name, table_name, columns)) }}
{%- endmacro %}

{% macro default__optional_source(source_name, table_name, columns) -%}
    {%- set declared = source(source_name, table_name) -%}
    {%- set relation = adapter.get_relation(
        database=declared.database, schema=declared.schema,
        identifier=declared.identifier) if execute else declared -%}
    {%- if relation is not none -%}
        select * from {{ declared }}
    {%- else -%}
        select
            {%- for name, sql_type in columns.items() %}
            cast(null as {{ sql_type }}) as {{ name }}{{ ',' if not loop.last }}
            {%- endfor %}
        where 1 = 0
    {%- endif -%}
{%- endmacro %}
