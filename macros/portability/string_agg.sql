{#- Aggregate strings into one, in ascending order of the values themselves. -#}

{% macro sorted_listagg(expr, delimiter_text) -%}
    {#- `delimiter_text` is a quoted SQL string literal, as for dbt.listagg. -#}
    {{ return(adapter.dispatch('sorted_listagg', 'cdp')(expr, delimiter_text)) }}
{%- endmacro %}

{% macro default__sorted_listagg(expr, delimiter_text) -%}
    {{ return(dbt.listagg(expr, delimiter_text, 'order by ' ~ expr)) }}
{%- endmacro %}

{% macro spark__sorted_listagg(expr, delimiter_text) -%}
    {#- dbt's spark listagg ignores order_by (collect_list order is not defined): sort the array. -#}
    array_join(array_sort(collect_list({{ expr }})), {{ delimiter_text }})
{%- endmacro %}
