-- grain: one row per customer_id with predictions (customers who purchased before the as-of date)
-- The table every model reads the predictions from (staged by stg_predictions__customer_predictions).
with predictions as (
    select * from {{ ref('stg_predictions__customer_predictions') }}
),

final as (
    select
        customer_id,
        as_of_at,
        p_alive,
        expected_purchases_90d,
        expected_purchases_365d,
        predicted_clv_365d,
        {%- for days in var('features')['propensity_horizons_days'] %}
            p_purchase_{{ days }}d,
        {%- endfor %}
        churn_risk
    from predictions
)

select * from final
