-- grain: one row per customer_id: the current journey stage and when it was entered
with stages as (
    select * from {{ ref('int_customers_journey_stages_assigned') }}
),

transitions as (
    select * from {{ ref('customer_journey_transitions') }}
),

latest_transitions as (
    {{ deduplicate('transitions', 'customer_id', 'transitioned_at desc') }}
),

final as (
    select
        stages.customer_id,
        stages.journey_stage,
        case stages.journey_stage
            when 'awareness' then 1
            when 'consideration' then 2
            when 'purchase' then 3
            when 'retention' then 4
            when 'loyalty' then 5
        end as journey_stage_rank,
        latest_transitions.transitioned_at as stage_entered_at,
        latest_transitions.from_stage as previous_stage
    from stages
    left join latest_transitions
        on
            stages.customer_id = latest_transitions.customer_id
            and stages.journey_stage = latest_transitions.to_stage
)

select * from final
