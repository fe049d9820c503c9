{#- Materializations that differ by engine for performance, not for results. -#}

{% macro shared_view_materialization() -%}
    {#-
        For a view that one query reads several times (through several CTEs). DuckDB and Postgres
        plan it once; Spark inlines the whole view tree into every reference and spends minutes
        planning, so on Spark it is a table.
    -#}
    {{ return(adapter.dispatch('shared_view_materialization', 'cdp')()) }}
{%- endmacro %}

{% macro default__shared_view_materialization() -%}
    {{ return('view') }}
{%- endmacro %}

{% macro spark__shared_view_materialization() -%}
    {{ return('table') }}
{%- endmacro %}


{% macro timeline_materialization() -%}
    {#-
        For large append-mostly models that update only what a batch touches (customer_events):
        incremental (delete+insert) on DuckDB and Postgres; a table on Spark, whose plain parquet
        tables have no delete+insert; and a table for as-of runs (CDP_AS_OF), which must not keep
        rows from a later as-of date.
    -#}
    {%- if var('as_of', '') -%}
        {{ return('table') }}
    {%- endif -%}
    {{ return(adapter.dispatch('timeline_materialization', 'cdp')()) }}
{%- endmacro %}

{% macro default__timeline_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}

{% macro spark__timeline_materialization() -%}
    {{ return('table') }}
{%- endmacro %}
