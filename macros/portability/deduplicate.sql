{#- Keep one row per key: the first by `order_by`. Portable (no QUALIFY). -#}
{% macro deduplicate(relation, partition_by, order_by) -%}
    select *
    from (
        select
            deduplicated_input.*,
            row_number() over (
                partition by {{ partition_by }}
                order by {{ order_by }}
            ) as dedupe_row_number
        from {{ relation }} as deduplicated_input
    ) as numbered
    where dedupe_row_number = 1
{%- endmacro %}
