-- grain: one row per customer_id and change of journey stage (transitioned_at)
-- The first snapshot of a customer is a transition from NULL (entered the journey).
-- Incremental (timeline_materialization): a run compares only its own snapshot date D with each
-- customer's stage before D, which is the to_stage of their latest transition before D; a second
-- run on D first deletes the transitions dated D (pre-hook). A table on Spark and in as-of runs
-- (computed from every snapshot).
{{
    config(
        materialized=timeline_materialization(),
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook=["{{ delete_rows_dated('transitioned_at', snapshot_date()) }}"],
    )
}}
{%- set today = snapshot_date() %}
{{- fail_if_dated_after('transitioned_at', today) }}

with snapshots as (
    select * from {{ ref('int_journey_stage_snapshots') }}
),

{% if is_incremental() %}
    stages_today as (
        select
            customer_id,
            snapshot_date,
            journey_stage
        from snapshots
        where snapshot_date = {{ today }}
    ),

    transitions_before as (
        -- the pre-hook removed the transitions dated today
        select * from {{ this }}
        where transitioned_at < {{ today }}
    ),

    stages_before as (
        {{ deduplicate('transitions_before', 'customer_id', 'transitioned_at desc') }}
    ),

    stages_with_previous as (
        select
            stages_today.customer_id,
            stages_today.snapshot_date,
            stages_today.journey_stage,
            stages_before.to_stage as previous_stage
        from stages_today
        left join stages_before on stages_today.customer_id = stages_before.customer_id
    ),
{% else %}
    stages_with_previous as (
        select
            customer_id,
            snapshot_date,
            journey_stage,
            lag(journey_stage) over (
                partition by customer_id
                order by snapshot_date
            ) as previous_stage
        from snapshots
    ),
{% endif %}

final as (
    select
        customer_id,
        snapshot_date as transitioned_at,
        previous_stage as from_stage,
        journey_stage as to_stage
    from stages_with_previous
    where previous_stage is null or previous_stage <> journey_stage
)

select * from final
