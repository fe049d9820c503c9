-- grain: one row per customer_id with email events before the as-of date
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
{%- set window_start = dbt.dateadd('day', -features['email_window_days'], as_of_at) %}

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

email_events as (
    select * from {{ ref('stg_email__events') }}
),

customer_email_events as (
    select
        source_records.customer_id,
        email_events.campaign_id,
        email_events.event_type,
        email_events.occurred_at
    from email_events
    inner join source_records
        on
            source_records.source = 'email_events'
            and email_events.email_event_id = source_records.source_record_id
    where
        source_records.customer_id is not null
        and email_events.occurred_at < {{ as_of_at }}
),

final as (
    -- rates count campaigns, not events: two opens of one email are one open
    select
        customer_id,
        count(
            distinct case
                when event_type = 'delivered' and occurred_at >= {{ window_start }} then campaign_id
            end
        ) as emails_delivered_90d,
        count(
            distinct case
                when event_type = 'open' and occurred_at >= {{ window_start }} then campaign_id
            end
        ) as emails_opened_90d,
        count(
            distinct case
                when event_type = 'click' and occurred_at >= {{ window_start }} then campaign_id
            end
        ) as emails_clicked_90d,
        max(case when event_type in ('unsubscribe', 'spam_report') then 1 else 0 end) as has_unsubscribed,
        max(case when event_type in ('open', 'click') then occurred_at end) as last_email_engaged_at
    from customer_email_events
    group by customer_id
)

select * from final
