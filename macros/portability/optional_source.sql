{#- A source that a Python asset writes after dbt first runs, read as "the table, or nothing":
    `select * from` the source's relation when it exists at run time, else zero rows with the
    given columns typed (`columns`: name -> SQL type, in order). source() is always called, so
    the lineage (and Dagster's asset order) stays that of a plain source. A relation that lacks
    some of `columns` (written by an older version) gives them as NULL. -#}
{% macro optional_source(source_name, table_name, columns) -%}
    {{ return(adapter.dispatch('optional_source', 'cdp')(source_name, table_name, columns)) }}
{%- endmacro %}

{% macro default__optional_source(source_name, table_name, columns) -%}
    {%- set declared = source(source_name, table_name) -%}
    {%- set relation = adapter.get_relation(
        database=declared.database, schema=declared.schema,
        identifier=declared.identifier) if execute else declared -%}
    {%- if relation is not none -%}
        {#- a table written before a column was added (an upgrade): the missing ones are NULL #}
        {%- set present = [] -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- do present.append(column.name | lower) -%}
        {%- endfor -%}
        select
            *
            {%- for name, sql_type in columns.items() if name | lower not in present %},
            cast(null as {{ sql_type }}) as {{ name }}
            {%- endfor %}
        from {{ declared }}
    {%- else -%}
        select
            {%- for name, sql_type in columns.items() %}
            cast(null as {{ sql_type }}) as {{ name }}{{ ',' if not loop.last }}
            {%- endfor %}
        where 1 = 0
    {%- endif -%}
{%- endmacro %}
