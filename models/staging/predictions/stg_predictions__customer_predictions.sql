-- grain: one row per customer_id with predictions (customers who purchased before the as-of date)
-- The predictions are written by a Python asset (orchestration/predictions.py); this typed
-- pass-through is the one model reading them from source(). Ephemeral: inlined into
-- int_customer_predictions, so nothing is built over the table before the asset first writes it.
-- Before the asset has ever run (dbt on its own: `dbt build` after `cdp load`), the table does not
-- exist: optional_source gives zero rows of these columns, so the prediction columns are NULL.
{{ config(materialized='ephemeral') }}
{%- set propensity_horizons = var('features')['propensity_horizons_days'] %}

{%- set columns = {
    'customer_id': dbt.type_string(),
    'as_of_at': 'timestamp',
    'p_alive': 'decimal(10, 4)',
    'expected_purchases_90d': 'decimal(18, 4)',
    'expected_purchases_365d': 'decimal(18, 4)',
    'predicted_clv_365d': 'decimal(18, 2)',
    'churn_risk': 'decimal(10, 4)',
} %}
{%- for days in propensity_horizons %}
    {%- do columns.update({'p_purchase_' ~ days ~ 'd': 'decimal(10, 4)'}) %}
{%- endfor %}

with predictions as (
    {{ optional_source('predictions', 'customer_predictions', columns) }}
),

final as (
    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(as_of_at as timestamp) as as_of_at,
        cast(p_alive as decimal(10, 4)) as p_alive,
        cast(expected_purchases_90d as decimal(18, 4)) as expected_purchases_90d,
        cast(expected_purchases_365d as decimal(18, 4)) as expected_purchases_365d,
        cast(predicted_clv_365d as decimal(18, 2)) as predicted_clv_365d,
        {%- for days in propensity_horizons %}
            cast(p_purchase_{{ days }}d as decimal(10, 4)) as p_purchase_{{ days }}d,
        {%- endfor %}
        cast(churn_risk as decimal(10, 4)) as churn_risk
    from predictions
)

select * from final
