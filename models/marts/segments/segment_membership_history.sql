-- grain: one row per segment_name, customer_id and stay in the segment (entered_at)
-- A stay is a run of consecutive snapshot dates with the customer in the segment; it ends at
-- the first snapshot date without them (exited_at), or is open (NULL) while they remain.
-- Incremental (timeline_materialization): a run applies only today's snapshot (the snapshot date
-- D) to the stays open on the previous snapshot date: members who left get exited_at = D, new
-- members get a stay entered on D. A second run on D first deletes the stays entered on D
-- (pre-hook) and re-opens those exited on D, so the day is applied again from its new snapshot.
-- A table on Spark and in as-of runs (computed from every snapshot).
{{
    config(
        materialized=timeline_materialization(),
        unique_key=['segment_name', 'customer_id', 'entered_at'],
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        pre_hook=["{{ delete_rows_dated('entered_at', snapshot_date()) }}"],
    )
}}
{%- set today = snapshot_date() %}
{{- fail_if_dated_after('coalesce(exited_at, entered_at)', today) }}

with snapshots as (
    select * from {{ ref('int_segment_membership_snapshots') }}
),

{% if is_incremental() %}
    members_today as (
        select
            segment_name,
            customer_id
        from snapshots
        where snapshot_date = {{ today }}
    ),

    snapshot_today as (
        -- a date without any member leaves no snapshot and is not a snapshot date
        select count(*) as member_rows from members_today
    ),

    open_before_today as (
        -- stays open on the previous snapshot date (the pre-hook removed those entered today)
        select
            segment_name,
            customer_id,
            entered_at
        from {{ this }}
        where
            entered_at < {{ today }}
            and (exited_at is null or exited_at = {{ today }})
    ),

    continued as (
        select
            open_before_today.segment_name,
            open_before_today.customer_id,
            open_before_today.entered_at,
            case
                when members_today.customer_id is null and snapshot_today.member_rows > 0
                    then {{ today }}
            end as exited_at
        from open_before_today
        cross join snapshot_today
        left join members_today
            on
                open_before_today.segment_name = members_today.segment_name
                and open_before_today.customer_id = members_today.customer_id
    ),

    entered as (
        select
            members_today.segment_name,
            members_today.customer_id,
            {{ today }} as entered_at,
            cast(null as date) as exited_at
        from members_today
        left join open_before_today
            on
                members_today.segment_name = open_before_today.segment_name
                and members_today.customer_id = open_before_today.customer_id
        where open_before_today.customer_id is null
    ),

    stays_dated as (
        select * from continued
        union all
        select * from entered
    ),
{% else %}
    snapshot_dates as (
        select distinct snapshot_date from snapshots
    ),

    snapshot_dates_numbered as (
        select
            snapshot_date,
            row_number() over (order by snapshot_date) as snapshot_number
        from snapshot_dates
    ),

    memberships_numbered as (
        select
            snapshots.segment_name,
            snapshots.customer_id,
            snapshots.snapshot_date,
            snapshot_dates_numbered.snapshot_number,
            snapshot_dates_numbered.snapshot_number - row_number() over (
                partition by snapshots.segment_name, snapshots.customer_id
                order by snapshots.snapshot_date
            ) as stay_number
        from snapshots
        inner join snapshot_dates_numbered
            on snapshots.snapshot_date = snapshot_dates_numbered.snapshot_date
    ),

    stays as (
        select
            segment_name,
            customer_id,
            min(snapshot_date) as entered_at,
            max(snapshot_number) as last_snapshot_number
        from memberships_numbered
        group by segment_name, customer_id, stay_number
    ),

    stays_dated as (
        select
            stays.segment_name,
            stays.customer_id,
            stays.entered_at,
            next_snapshot.snapshot_date as exited_at
        from stays
        left join snapshot_dates_numbered as next_snapshot
            on stays.last_snapshot_number + 1 = next_snapshot.snapshot_number
    ),
{% endif %}

final as (
    select
        segment_name,
        customer_id,
        cast(entered_at as date) as entered_at,
        cast(exited_at as date) as exited_at,
        exited_at is null as is_current
    from stays_dated
)

select * from final
