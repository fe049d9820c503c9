-- grain: one row per customer_id: every column a segment condition may use (segments/*.yml)
with customers as (
    select * from {{ ref('customers') }}
),

features as (
    select * from {{ ref('customer_features') }}
),

predictions as (
    select * from {{ ref('int_customer_predictions') }}
),

journey as (
    select * from {{ ref('int_customers_journey_stages_assigned') }}
),

purchasers as (
    select
        customer_id,
        days_since_last_purchase,
        orders_total,
        revenue_total
    from features
    where orders_total > 0
),

rfm_scores as (
    -- quintiles among purchasers, 5 = best (most recent, most frequent, highest spend)
    select
        customer_id,
        ntile(5) over (order by days_since_last_purchase desc, customer_id asc) as recency_score,
        ntile(5) over (order by orders_total, customer_id) as frequency_score,
        ntile(5) over (order by revenue_total, customer_id) as monetary_score,
        ntile(10) over (order by revenue_total, customer_id) as revenue_decile
    from purchasers
),

clv_deciles as (
    select
        customer_id,
        ntile(10) over (order by predicted_clv_365d, customer_id) as clv_decile
    from predictions
    where predicted_clv_365d is not null
),

final as (
    select
        features.customer_id,
        customers.loyalty_tier,
        customers.country_code,
        customers.first_seen_at,
        features.tenure_days,
        features.first_purchase_at,
        features.last_purchase_at,
        features.days_since_last_purchase,
        features.orders_total,
        features.revenue_total,
        features.orders_30d,
        features.revenue_30d,
        features.orders_90d,
        features.revenue_90d,
        features.orders_365d,
        features.revenue_365d,
        features.avg_order_value,
        features.online_order_share,
        features.top_category,
        features.last_web_seen_at,
        features.web_sessions_30d,
        features.web_sessions_90d,
        features.cart_adds_30d,
        features.last_cart_added_at,
        features.has_cart_without_purchase,
        features.emails_delivered_90d,
        features.email_open_rate_90d,
        features.email_click_rate_90d,
        features.is_email_unsubscribed,
        features.support_tickets_365d,
        features.open_support_tickets,
        features.last_csat,
        predictions.p_alive,
        predictions.expected_purchases_90d,
        predictions.expected_purchases_365d,
        predictions.predicted_clv_365d,
        predictions.churn_risk,
        {%- for days in var('features')['propensity_horizons_days'] %}
            predictions.p_purchase_{{ days }}d,
        {%- endfor %}
        clv_deciles.clv_decile,
        rfm_scores.revenue_decile,
        rfm_scores.recency_score,
        rfm_scores.frequency_score,
        rfm_scores.monetary_score,
        case
            when rfm_scores.customer_id is null then null
            when
                rfm_scores.recency_score >= 4
                and rfm_scores.frequency_score + rfm_scores.monetary_score >= 8
                then 'champions'
            when
                rfm_scores.recency_score >= 3
                and rfm_scores.frequency_score + rfm_scores.monetary_score >= 6
                then 'loyal'
            when rfm_scores.recency_score >= 3 then 'potential'
            when rfm_scores.frequency_score + rfm_scores.monetary_score >= 6 then 'at_risk'
            else 'hibernating'
        end as rfm_segment,
        journey.journey_stage
    from features
    left join customers on features.customer_id = customers.customer_id
    left join predictions on features.customer_id = predictions.customer_id
    left join clv_deciles on features.customer_id = clv_deciles.customer_id
    left join rfm_scores on features.customer_id = rfm_scores.customer_id
    left join journey on features.customer_id = journey.customer_id
)

select * from final
