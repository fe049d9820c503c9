-- grain: one row per customer_id (every profile in customers), computed as of the as-of date
-- Incremental within a day (timeline_materialization): a run replaces the rows of the customers in
-- int_customers_features_touched (pre-hook delete, then append; every customer on the first run of
-- a UTC day) and keeps the others, each row with the as_of_at it was computed at. It copies that
-- model's timeline watermark (timeline_written_at), which the next run's touched set starts from.
-- Ids retired by a merge are touched under their old id, so they leave; erasures delete rows directly.
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

with touched as (
    select * from {{ ref('int_customers_features_touched') }}
),

watermark as (
    select max(timeline_written_at) as timeline_written_at from touched
),

customers as (
    select * from {{ ref('customers') }}
    where {{ touched_customers_filter('customer_id') }}
),

purchases as (
    select * from {{ ref('int_customers_purchases_summarised') }}
),

web as (
    select * from {{ ref('int_customers_web_summarised') }}
),

email as (
    select * from {{ ref('int_customers_email_summarised') }}
),

support as (
    select * from {{ ref('int_customers_support_summarised') }}
),

joined as (
    select
        customers.customer_id,
        {{ as_of_at }} as as_of_at,
        coalesce(customers.first_seen_at, purchases.first_purchase_at) as tenure_started_at,
        purchases.first_purchase_at,
        purchases.last_purchase_at,
        coalesce(purchases.orders_total, 0) as orders_total,
        coalesce(purchases.revenue_total, 0) as revenue_total,
        {%- for days in features['windows_days'] %}
            coalesce(purchases.orders_{{ days }}d, 0) as orders_{{ days }}d,
            coalesce(purchases.revenue_{{ days }}d, 0) as revenue_{{ days }}d,
        {%- endfor %}
        coalesce(purchases.online_orders, 0) as online_orders,
        purchases.top_category,
        web.last_web_seen_at,
        {%- for days in features['windows_days'] %}
            coalesce(web.web_sessions_{{ days }}d, 0) as web_sessions_{{ days }}d,
        {%- endfor %}
        coalesce(web.cart_adds_30d, 0) as cart_adds_30d,
        web.last_cart_added_at,
        coalesce(email.emails_delivered_90d, 0) as emails_delivered_90d,
        coalesce(email.emails_opened_90d, 0) as emails_opened_90d,
        coalesce(email.emails_clicked_90d, 0) as emails_clicked_90d,
        coalesce(email.has_unsubscribed, 0) as has_unsubscribed,
        email.last_email_engaged_at,
        coalesce(support.support_tickets_365d, 0) as support_tickets_365d,
        coalesce(support.open_support_tickets, 0) as open_support_tickets,
        support.last_csat,
        watermark.timeline_written_at
    from customers
    cross join watermark
    left join purchases on customers.customer_id = purchases.customer_id
    left join web on customers.customer_id = web.customer_id
    left join email on customers.customer_id = email.customer_id
    left join support on customers.customer_id = support.customer_id
    -- a profile first seen after the as-of date did not exist yet
    where customers.first_seen_at is null or customers.first_seen_at < {{ as_of_at }}
),

final as (
    select
        customer_id,
        cast(as_of_at as timestamp) as as_of_at,
        -- dbt.datediff renders long on some engines
        cast({{ dbt.datediff('tenure_started_at', 'as_of_at', 'day') }} as integer) as tenure_days,  -- noqa: LT05
        first_purchase_at,
        last_purchase_at,
        cast(
            {{ dbt.datediff('last_purchase_at', 'as_of_at', 'day') }} as integer  -- noqa: LT05
        ) as days_since_last_purchase,
        cast(orders_total as integer) as orders_total,
        cast(revenue_total as decimal(18, 2)) as revenue_total,
        {%- for days in features['windows_days'] %}
            cast(orders_{{ days }}d as integer) as orders_{{ days }}d,
            cast(revenue_{{ days }}d as decimal(18, 2)) as revenue_{{ days }}d,
        {%- endfor %}
        cast(
            case when orders_total > 0 then revenue_total / orders_total end as decimal(18, 2)
        ) as avg_order_value,
        cast(
            case when orders_total > 0 then 1.0 * online_orders / orders_total end as decimal(10, 4)
        ) as online_order_share,
        top_category,
        last_web_seen_at,
        {%- for days in features['windows_days'] %}
            cast(web_sessions_{{ days }}d as integer) as web_sessions_{{ days }}d,
        {%- endfor %}
        cast(cart_adds_30d as integer) as cart_adds_30d,
        last_cart_added_at,
        coalesce(
            last_cart_added_at is not null
            and (last_purchase_at is null or last_cart_added_at > last_purchase_at),
            false
        ) as has_cart_without_purchase,
        cast(emails_delivered_90d as integer) as emails_delivered_90d,
        cast(
            case when emails_delivered_90d > 0 then 1.0 * emails_opened_90d / emails_delivered_90d end
            as decimal(10, 4)
        ) as email_open_rate_90d,
        cast(
            case when emails_delivered_90d > 0 then 1.0 * emails_clicked_90d / emails_delivered_90d end
            as decimal(10, 4)
        ) as email_click_rate_90d,
        has_unsubscribed = 1 as is_email_unsubscribed,
        last_email_engaged_at,
        cast(support_tickets_365d as integer) as support_tickets_365d,
        cast(open_support_tickets as integer) as open_support_tickets,
        cast(last_csat as integer) as last_csat,
        cast(timeline_written_at as timestamp) as timeline_written_at
    from joined
)

select * from final
