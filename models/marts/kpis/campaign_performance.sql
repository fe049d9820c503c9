-- grain: one row per campaign_performance_id (channel and campaign_id)
-- Email campaigns come from the ESP events (channel 'email'); ad campaigns from the optional ad
-- platform export (channel = the platform). Definitions: docs/features.md, "Campaign KPIs".
-- A recipient's events count once per campaign (unique opens and clicks); a click counts as an
-- open (image blocking hides opens, never clicks). A conversion is a recipient (known customer)
-- purchasing in any channel within var kpis.campaign_conversion_window_days after the first
-- delivery; one purchase can convert several campaigns (no cross-campaign de-duplication).
{%- set window_days = var('kpis')['campaign_conversion_window_days'] %}

with email_events as (
    select * from {{ ref('stg_email__events') }}
),

source_records as (
    select * from {{ ref('int_source_records_assigned') }}
    where source = 'email_events'
),

transactions as (
    select * from {{ ref('int_transactions_attributed') }}
),

ad_performance as (
    select * from {{ ref('stg_ads__ad_performance') }}
),

recipient_events as (
    select
        email_events.campaign_id,
        email_events.email as recipient,
        source_records.customer_id,
        email_events.event_type,
        email_events.occurred_at
    from email_events
    left join source_records
        on email_events.email_event_id = source_records.source_record_id
    where
        email_events.campaign_id is not null
        and email_events.email is not null
),

recipients as (
    -- one row per campaign and recipient address: what the recipient did
    select
        campaign_id,
        recipient,
        max(customer_id) as customer_id,
        min(case when event_type = 'delivered' then occurred_at end) as delivered_at,
        max(case when event_type in ('open', 'click') then 1 else 0 end) as has_opened,
        max(case when event_type = 'click' then 1 else 0 end) as has_clicked,
        max(case when event_type = 'unsubscribe' then 1 else 0 end) as has_unsubscribed
    from recipient_events
    group by campaign_id, recipient
),

delivered as (
    -- engagement counts only for recipients the ESP reported a delivery for
    select * from recipients
    where delivered_at is not null
),

converted as (
    select
        delivered.campaign_id,
        delivered.recipient,
        sum(transactions.amount) as revenue
    from delivered
    inner join transactions
        on
            delivered.customer_id = transactions.customer_id
            and delivered.delivered_at <= transactions.transacted_at
            and {{ dbt.dateadd('day', window_days, 'delivered.delivered_at') }}
            > transactions.transacted_at
    group by delivered.campaign_id, delivered.recipient
),

email_campaigns as (
    select
        'email' as channel,
        delivered.campaign_id,
        min(delivered.delivered_at) as first_activity_at,
        count(*) as delivered,
        sum(delivered.has_opened) as opened,
        sum(delivered.has_clicked) as clicked,
        sum(delivered.has_unsubscribed) as unsubscribed,
        count(converted.recipient) as conversions,
        coalesce(sum(converted.revenue), 0) as conversion_revenue,
        cast(null as {{ dbt.type_bigint() }}) as impressions,
        cast(null as decimal(18, 2)) as spend
    from delivered
    left join converted
        on
            delivered.campaign_id = converted.campaign_id
            and delivered.recipient = converted.recipient
    group by delivered.campaign_id
),

ad_campaigns as (
    select
        platform as channel,
        campaign_id,
        cast(min(report_date) as timestamp) as first_activity_at,
        cast(null as {{ dbt.type_bigint() }}) as delivered,
        cast(null as {{ dbt.type_bigint() }}) as opened,
        sum(clicks) as clicked,
        cast(null as {{ dbt.type_bigint() }}) as unsubscribed,
        cast(null as {{ dbt.type_bigint() }}) as conversions,
        cast(null as decimal(18, 2)) as conversion_revenue,
        sum(impressions) as impressions,
        sum(spend) as spend
    from ad_performance
    group by platform, campaign_id
),

campaigns as (
    select * from email_campaigns
    union all
    select * from ad_campaigns
),

final as (
    select
        cast({{ dbt.concat(["channel", "':'", "campaign_id"]) }} as {{ type_varchar() }})
            as campaign_performance_id,
        cast(channel as {{ type_varchar() }}) as channel,
        cast(campaign_id as {{ type_varchar() }}) as campaign_id,
        cast(first_activity_at as timestamp) as first_activity_at,
        cast(delivered as bigint) as delivered,
        cast(opened as bigint) as opened,
        cast(clicked as bigint) as clicked,
        cast(unsubscribed as bigint) as unsubscribed,
        cast(case when delivered > 0 then 1.0 * opened / delivered end as decimal(18, 4))
            as open_rate,
        cast(case when delivered > 0 then 1.0 * clicked / delivered end as decimal(18, 4))
            as click_rate,
        cast(case when opened > 0 then 1.0 * clicked / opened end as decimal(18, 4))
            as click_to_open_rate,
        cast(case when delivered > 0 then 1.0 * unsubscribed / delivered end as decimal(18, 4))
            as unsubscribe_rate,
        cast(conversions as bigint) as conversions,
        cast(case when delivered > 0 then 1.0 * conversions / delivered end as decimal(18, 4))
            as conversion_rate,
        cast(conversion_revenue as decimal(18, 2)) as conversion_revenue,
        cast(impressions as bigint) as impressions,
        cast(spend as decimal(18, 2)) as spend,
        cast(case when impressions > 0 then 1.0 * clicked / impressions end as decimal(18, 4))
            as click_through_rate,
        cast(case when clicked > 0 then 1.0 * spend / clicked end as decimal(18, 4))
            as cost_per_click
    from campaigns
)

select * from final
