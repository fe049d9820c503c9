-- grain: one row per customer_id and change of journey stage (transitioned_at)
-- The first snapshot of a customer is a transition from NULL (entered the journey).
with snapshots as (
    select * from {{ ref('int_journey_stage_snapshots') }}
),

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
