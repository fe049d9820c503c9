-- grain: one row per declared segment (segment_name)
with definitions as (
    select * from {{ ref('int_segment_definitions') }}
),

memberships as (
    select * from {{ ref('segment_memberships') }}
),

member_counts as (
    select
        segment_name,
        count(*) as member_count
    from memberships
    group by segment_name
),

final as (
    select
        definitions.segment_name,
        definitions.segment_description,
        definitions.segment_owner,
        definitions.consent_purpose,
        definitions.condition_sql,
        definitions.declared_in,
        coalesce(member_counts.member_count, 0) as member_count
    from definitions
    left join member_counts on definitions.segment_name = member_counts.segment_name
)

select * from final
