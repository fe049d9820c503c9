{#- Column types that must match a model contract's `data_type` exactly. -#}

{% macro type_varchar() -%}
    {#-
        The type a contract's `data_type: varchar` becomes on the engine. Incremental models with
        `on_schema_change='fail'` compare the types of each run's new rows with the existing
        table's, so their string columns are cast to this, not to dbt.type_string(), which is
        `text` on Postgres (a different type from `character varying` there).
    -#}
    {{ return(adapter.dispatch('type_varchar', 'cdp')()) }}
{%- endmacro %}

{% macro default__type_varchar() -%}
    varchar
{%- endmacro %}

{% macro spark__type_varchar() -%}
    string
{%- endmacro %}
