-- grain: one row per segment_name and customer_id currently in the segment
with history as (
    select * from {{ ref('segment_membership_history') }}
),

definitions as (
    select * from {{ ref('int_segment_definitions') }}
),

final as (
    -- only segments still declared: a deleted segment's last members are not current
    select
        history.segment_name,
        history.customer_id,
        history.entered_at
    from history
    inner join definitions on history.segment_name = definitions.segment_name
    where history.is_current
)

select * from final
