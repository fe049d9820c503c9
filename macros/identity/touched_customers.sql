{#- Incremental customer tables (customers, customer_features): restrict a run to the customers
    a batch touched, and drop the ids the registry no longer holds. -#}

{% macro touched_customers_filter(column) -%}
    {#- In an incremental run of a model with a `touched` CTE: only those customers. -#}
    {%- if is_incremental() -%}
        {{ column }} in (select touched.customer_id from touched)
    {%- else -%}
        (1 = 1)
    {%- endif -%}
{%- endmacro %}


{% macro delete_inactive_customers() -%}
    {#- Post-hook of incremental customer tables: ids retired by a merge or erased leave. -#}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where customer_id in (
            select built.customer_id from {{ this }} as built
            except
            select registry.customer_id
            from {{ ref('int_identity_customer_ids_assigned') }} as registry
            where registry.is_active
        )
    {%- endif -%}
{%- endmacro %}


{% macro delete_touched_customers(touched_relation) -%}
    {#-
        Pre-hook of incremental tables that hold rows for some customers only (a batch touches a
        customer: its rows are replaced, or removed when it has none now): in an incremental run,
        delete the touched customers' rows; the model then appends their new rows (strategy append)
        in the same transaction.
    -#}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where customer_id in (select touched.customer_id from {{ touched_relation }} as touched)
    {%- endif -%}
{%- endmacro %}


{% macro is_incremental_with(columns) -%}
    {#-
        is_incremental(), and {{ this }} already has these columns. A table built by an older
        version lacks the columns a newer incremental run reads (its watermark): that first run
        then takes the full path (every row in the batch) and on_schema_change adds the columns.
    -#}
    {%- if not is_incremental() or not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set existing = adapter.get_columns_in_relation(this) | map(attribute='name')
        | map('lower') | list -%}
    {%- for column in columns if column | lower not in existing -%}
        {{ return(false) }}
    {%- endfor -%}
    {{ return(true) }}
{%- endmacro %}
