-- grain: one row per customer_id: the journey stage at the as-of date (rules in docs/segments.md)
{%- set rules = var('segments') %}

with features as (
    select * from {{ ref('customer_features') }}
),

customers as (
    select * from {{ ref('customers') }}
),

final as (
    -- the first matching rule wins, from the deepest stage down
    select
        features.customer_id,
        case
            when
                features.orders_365d >= {{ rules['loyal_min_orders'] }}
                or (customers.loyalty_tier is not null and features.orders_365d >= 2)
                then 'loyalty'
            when
                features.orders_total >= 2
                and features.days_since_last_purchase < {{ rules['lapsed_after_days'] }}
                then 'retention'
            when
                features.orders_total = 1
                and features.days_since_last_purchase < {{ rules['lapsed_after_days'] }}
                then 'purchase'
            when
                features.cart_adds_30d > 0
                or features.web_sessions_90d >= 2
                or features.email_click_rate_90d > 0
                then 'consideration'
            else 'awareness'
        end as journey_stage
    from features
    left join customers on features.customer_id = customers.customer_id
)

select * from final
