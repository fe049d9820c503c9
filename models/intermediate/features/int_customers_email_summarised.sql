-- grain: one row per customer_id with email events before the as-of date
{%- set features = var('features') %}
{%- set as_of_at = as_of_timestamp() %}
{%- set window_start = dbt.dateadd('day', -features['email_window_days'], as_of_at) %}

with source_records as (
    select * from {{ ref('customer_source_records') }}
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
