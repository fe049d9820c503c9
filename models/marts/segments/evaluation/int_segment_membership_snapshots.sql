-- grain: one row per snapshot_date, segment_name and customer_id (members on that date)
{{
    config(
        materialized='incremental',
        unique_key='snapshot_date',
        incremental_strategy=daily_snapshot_strategy(),
        partition_by=daily_snapshot_partition_by('snapshot_date'),
        on_schema_change='fail',
    )
}}

with members as (
    select * from {{ ref('int_segment_members_evaluated') }}
),

final as (
    select
        {{ snapshot_date() }} as snapshot_date,
        segment_name,
        customer_id
    from members
)

select * from final
