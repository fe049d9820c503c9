-- grain: one row per snapshot_date and customer_id (journey stage on that date)
{{
    config(
        materialized='incremental',
        unique_key='snapshot_date',
        incremental_strategy=daily_snapshot_strategy(),
        partition_by=daily_snapshot_partition_by('snapshot_date'),
        on_schema_change='fail',
    )
}}

with stages as (
    select * from {{ ref('int_customers_journey_stages_assigned') }}
),

final as (
    select
        {{ snapshot_date() }} as snapshot_date,
        customer_id,
        journey_stage
    from stages
)

select * from final
