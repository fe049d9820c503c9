-- grain: one row per customer_id with web activity (page views or track calls) before the as-of date
-- Incremental within a day (timeline_materialization): a run replaces the rows of the customers in
-- int_customers_features_touched (pre-hook delete, then append) and keeps the others.
-- depends_on: {{ ref('int_customers_features_touched') }}
{{
    config(
        materialized=timeline_materialization(),
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook=["{{ delete_touched_customers(ref('int_customers_features_touched')) }}"],
    )
}}
{%- set features = var('features') %}
{%- set as_of_at = as_of_timestamp() %}

with
{% if is_incremental() %}
    touched as (
        select * from {{ ref('int_customers_features_touched') }}
    ),
{% endif %}

source_records as (
    select * from {{ ref('int_source_records_assigned') }}
    where {{ touched_customers_filter('customer_id') }}
),

pages as (
    select * from {{ ref('stg_segment__pages') }}
),

tracks as (
    select * from {{ ref('stg_segment__tracks') }}
),

page_hits as (
    select
        source_records.customer_id,
        pages.occurred_at,
        0 as is_cart_add
    from pages
    inner join source_records
        on
            source_records.source = 'segment_pages'
            and pages.page_view_id = source_records.source_record_id
),

track_hits as (
    select
        source_records.customer_id,
        tracks.occurred_at,
        case
            when lower(tracks.event_name) in (
                {%- for name in features['cart_event_names'] %}
                    '{{ name }}'{{ ',' if not loop.last }}
                {%- endfor %}
            ) then 1
            else 0
        end as is_cart_add
    from tracks
    inner join source_records
        on
            source_records.source = 'segment_tracks'
            and tracks.track_id = source_records.source_record_id
),

hits as (
    select * from page_hits
    union all
    select * from track_hits
),

hits_in_range as (
    select
        customer_id,
        occurred_at,
        is_cart_add,
        lag(occurred_at) over (
            partition by customer_id
            order by occurred_at
        ) as previous_hit_at
    from hits
    where
        customer_id is not null
        and occurred_at < {{ as_of_at }}
),

hits_flagged as (
    -- a hit starts a session when the previous hit is more than the session gap earlier
    select
        customer_id,
        occurred_at,
        is_cart_add,
        case
            when previous_hit_at is null then 1
            when
                occurred_at
                > {{ dbt.dateadd('minute', features['web_session_gap_minutes'], 'previous_hit_at') }}
                then 1
            else 0
        end as is_session_start
    from hits_in_range
),

final as (
    select
        customer_id,
        max(occurred_at) as last_web_seen_at,
        {%- for days in features['windows_days'] %}
            sum(
                case
                    when is_session_start = 1 and occurred_at >= {{ dbt.dateadd('day', -days, as_of_at) }}
                        then 1
                    else 0
                end
            ) as web_sessions_{{ days }}d,
        {%- endfor %}
        sum(
            case
                when is_cart_add = 1 and occurred_at >= {{ dbt.dateadd('day', -30, as_of_at) }} then 1
                else 0
            end
        ) as cart_adds_30d,
        max(case when is_cart_add = 1 then occurred_at end) as last_cart_added_at
    from hits_flagged
    group by customer_id
)

select * from final
