-- grain: one row per segment_name, customer_id and stay in the segment (entered_at)
-- A stay is a run of consecutive snapshot dates with the customer in the segment; it ends at
-- the first snapshot date without them (exited_at), or is open (NULL) while they remain.
with snapshots as (
    select * from {{ ref('int_segment_membership_snapshots') }}
),

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

final as (
    select
        stays.segment_name,
        stays.customer_id,
        stays.entered_at,
        next_snapshot.snapshot_date as exited_at,
        next_snapshot.snapshot_date is null as is_current
    from stays
    left join snapshot_dates_numbered as next_snapshot
        on stays.last_snapshot_number + 1 = next_snapshot.snapshot_number
)

select * from final
