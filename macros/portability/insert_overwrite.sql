{#-
    Spark only (dbt-spark's incremental materialization calls this; no other adapter does).
    Spark refuses `insert overwrite` into a parquet table that the inserted query reads
    ("Cannot overwrite a path that is also being read from"), and our history models read
    {{ this }}. So the new rows are first written to a real staging table, the target is
    overwritten from it, and the statement returned to the materialization drops the staging table.
    Overrides dbt-spark's macro of the same name; partitioned models (daily snapshots, dynamic
    partition overwrite) go the same way.
-#}
{% macro get_insert_overwrite_sql(source_relation, target_relation, existing_relation) %}
    {%- set staged = target_relation.incorporate(
        path={"identifier": target_relation.identifier ~ '__cdp_staged'}) -%}
    {%- set dest_columns = adapter.get_columns_in_relation(target_relation) -%}
    {%- set dest_cols_csv = dest_columns | map(attribute='quoted') | join(', ') -%}
    {%- do run_query('drop table if exists ' ~ staged) -%}
    {%- do run_query('create table ' ~ staged ~ ' using parquet as select * from '
                     ~ source_relation) -%}
    {%- if existing_relation is not none and existing_relation.is_iceberg -%}
        {%- do run_query('insert overwrite ' ~ target_relation ~ ' select ' ~ dest_cols_csv
                         ~ ' from ' ~ staged) -%}
    {%- else -%}
        {%- do run_query('insert overwrite table ' ~ target_relation ~ ' '
                         ~ partition_cols(label='partition') ~ ' select ' ~ dest_cols_csv
                         ~ ' from ' ~ staged) -%}
    {%- endif -%}
    drop table if exists {{ staged }}
{% endmacro %}
