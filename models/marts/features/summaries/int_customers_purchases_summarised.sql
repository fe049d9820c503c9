-- grain: one row per customer_id with at least one purchase before the as-of date
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

transactions as (
    select * from {{ ref('int_transactions_attributed') }}
    where {{ touched_customers_filter('customer_id') }}
),

order_lines as (
    select * from {{ ref('stg_shop__order_lines') }}
),

purchases_by_customer as (
    select
        customer_id,
        min(transacted_at) as first_purchase_at,
        max(transacted_at) as last_purchase_at,
        count(*) as orders_total,
        sum(amount) as revenue_total,
        {%- for days in features['windows_days'] %}
            sum(
                case when transacted_at >= {{ dbt.dateadd('day', -days, as_of_at) }} then 1 else 0 end
            ) as orders_{{ days }}d,
            sum(
                case when transacted_at >= {{ dbt.dateadd('day', -days, as_of_at) }} then amount else 0 end
            ) as revenue_{{ days }}d,
        {%- endfor %}
        sum(case when channel = 'online' then 1 else 0 end) as online_orders
    from transactions
    group by customer_id
),

revenue_by_category as (
    select
        transactions.customer_id,
        order_lines.category,
        sum(order_lines.line_amount) as category_revenue
    from order_lines
    inner join transactions
        on
            transactions.source_name = 'shop_orders'
            and order_lines.order_id = transactions.source_record_id
    where order_lines.category is not null
    group by transactions.customer_id, order_lines.category
),

top_categories as (
    {{ deduplicate('revenue_by_category', 'customer_id', 'category_revenue desc, category') }}
),

final as (
    select
        purchases_by_customer.customer_id,
        purchases_by_customer.first_purchase_at,
        purchases_by_customer.last_purchase_at,
        purchases_by_customer.orders_total,
        purchases_by_customer.revenue_total,
        {%- for days in features['windows_days'] %}
            purchases_by_customer.orders_{{ days }}d,
            purchases_by_customer.revenue_{{ days }}d,
        {%- endfor %}
        purchases_by_customer.online_orders,
        top_categories.category as top_category
    from purchases_by_customer
    left join top_categories
        on purchases_by_customer.customer_id = top_categories.customer_id
)

select * from final
