{#- The suppression list written by orchestration/privacy.py (privacy.suppression_list), or an
    empty relation of the same shape before the first privacy run created it. -#}
{% macro suppression_list_relation() -%}
    {%- set relation = adapter.get_relation(
        database=target.database, schema='privacy', identifier='suppression_list') -%}
    {%- if execute and relation is not none -%}
        select identifier_hash, suppression_action from {{ relation }}
    {%- else -%}
        select
            cast(null as {{ dbt.type_string() }}) as identifier_hash,
            cast(null as {{ dbt.type_string() }}) as suppression_action
        where 1 = 0
    {%- endif -%}
{%- endmacro %}
