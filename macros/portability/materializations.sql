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
