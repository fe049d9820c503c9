{#- Daily snapshot tables (segment memberships, journey stages, KPIs) keep one batch of rows per
    date: a re-run on the same date replaces that date's rows and leaves the other dates alone. -#}

{% macro daily_snapshot_strategy() -%}
    {{ return(adapter.dispatch('daily_snapshot_strategy', 'cdp')()) }}
{%- endmacro %}

{% macro default__daily_snapshot_strategy() -%}
    {{ return('delete+insert') }}
{%- endmacro %}

{% macro spark__daily_snapshot_strategy() -%}
    {{ return('insert_overwrite') }}
{%- endmacro %}


{% macro daily_snapshot_partition_by(column) -%}
    {#- Spark replaces whole partitions; other engines delete by the unique key. -#}
    {{ return([column] if target.type == 'spark' else none) }}
{%- endmacro %}


{% macro snapshot_date() -%}
    {#- The date a snapshot describes: the as-of date, or today (UTC) when none is set. -#}
    cast({{ dbt.dateadd('second', -1, as_of_timestamp()) }} as date)
{%- endmacro %}


{% macro delete_rows_dated(column, date_expr) -%}
    {#- Pre-hook of the incremental history tables (segment stays, journey transitions): a second
        run on the same snapshot date removes the rows that date created, then applies the date's
        new snapshot again. -#}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ column }} = {{ date_expr }}
    {%- endif -%}
{%- endmacro %}


{% macro fail_if_dated_after(date_columns_sql, date_expr) -%}
    {#- In an incremental run of a history table: stop when it holds rows dated after this run's
        snapshot date (an earlier as-of run with a later date); only a rebuild can apply an
        earlier date. -#}
    {%- if is_incremental() and execute -%}
        {%- set later = run_query(
            'select count(*) from ' ~ this ~ ' where ' ~ date_columns_sql ~ ' > ' ~ date_expr
        ).columns[0].values()[0] -%}
        {%- if later > 0 -%}
            {{ exceptions.raise_compiler_error(
                this.identifier ~ ' holds ' ~ later ~ ' row(s) dated after the snapshot date of '
                ~ 'this run (an earlier as-of run with a later date?): rebuild it with '
                ~ 'dbt run --full-refresh -s ' ~ this.identifier) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
