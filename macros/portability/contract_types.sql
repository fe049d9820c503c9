{#-
    Model contracts name column types once, in ANSI spelling (varchar, integer, decimal(p,s), ...),
    valid on DuckDB and Postgres. Spark 4 rejects `varchar` without a length
    (DATATYPE_MISSING_SIZE), so on Spark dbt's contract check casts to `string` instead.
    Found through dispatch because dbt_project.yml puts this project first in the search order of
    the `dbt` namespace; every other engine keeps dbt's own default.
-#}

{% macro contract_type(data_type) -%}
    {{ return(adapter.dispatch('contract_type', 'cdp')(data_type)) }}
{%- endmacro %}

{% macro default__contract_type(data_type) -%}
    {{ return(data_type) }}
{%- endmacro %}

{% macro spark__contract_type(data_type) -%}
    {%- set normalized = data_type.strip().lower() -%}
    {{ return('string' if normalized in ('varchar', 'text', 'character varying') else data_type) }}
{%- endmacro %}


{% macro spark__get_empty_schema_sql(columns) %}
    {#- dbt's default__get_empty_schema_sql, with each contract type spelled for Spark. -#}
    {%- set spark_columns = {} -%}
    {%- for name in columns -%}
        {%- set column = columns[name] -%}
        {%- set spelled = column.copy() if column is mapping else column -%}
        {%- if column.get('data_type') is not none -%}
            {%- do spelled.update({'data_type': contract_type(column['data_type'])}) -%}
        {%- endif -%}
        {%- do spark_columns.update({name: spelled}) -%}
    {%- endfor -%}
    {{ return(dbt.default__get_empty_schema_sql(spark_columns)) }}
{% endmacro %}
