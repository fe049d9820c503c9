{#-
    Incremental strategies of the identity history tables. DuckDB and Postgres delete the rows
    whose unique_key is in the new batch and insert the batch (delete+insert). dbt-spark has no
    delete+insert on plain parquet tables (merge needs Delta, Iceberg or Hudi), so on Spark:
      * a model that re-emits the whole table every run (it reads {{ this }} and returns old and
        new rows) replaces it: insert_overwrite without partition_by;
      * a model whose keys never repeat across runs (the run number is part of the key) appends.
-#}

{% macro rebuilt_history_strategy() -%}
    {{ return(adapter.dispatch('rebuilt_history_strategy', 'cdp')()) }}
{%- endmacro %}

{% macro default__rebuilt_history_strategy() -%}
    {{ return('delete+insert') }}
{%- endmacro %}

{% macro spark__rebuilt_history_strategy() -%}
    {{ return('insert_overwrite') }}
{%- endmacro %}


{% macro appended_history_strategy() -%}
    {{ return(adapter.dispatch('appended_history_strategy', 'cdp')()) }}
{%- endmacro %}

{% macro default__appended_history_strategy() -%}
    {{ return('delete+insert') }}
{%- endmacro %}

{% macro spark__appended_history_strategy() -%}
    {{ return('append') }}
{%- endmacro %}

