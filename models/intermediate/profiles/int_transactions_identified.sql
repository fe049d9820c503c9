-- grain: one row per purchase (transaction_id), online or in store, attributed to a customer_id
-- The purchase rule, in one place: a shop order not in var features.excluded_order_statuses, or a
-- store transaction, of any date. customers counts these; int_transactions_attributed keeps those
-- before the as-of date for the features and the predictions.
{%- set features = var('features') %}

with source_records as (
    select * from {{ ref('int_source_records_assigned') }}
),

shop_orders as (
    select * from {{ ref('stg_shop__orders') }}
),

pos_transactions as (
    select * from {{ ref('stg_pos__transactions') }}
),

online_purchases as (
    select
        source_records.customer_id,
        'shop_orders' as source_name,
        shop_orders.order_id as source_record_id,
        'online' as channel,
        shop_orders.ordered_at as transacted_at,
        shop_orders.total_amount as amount
    from shop_orders
    inner join source_records
        on
            source_records.source = 'shop_orders'
            and shop_orders.order_id = source_records.source_record_id
    where
        coalesce(shop_orders.order_status, 'completed') not in (
            {%- for status in features['excluded_order_statuses'] %}
                '{{ status }}'{{ ',' if not loop.last }}
            {%- endfor %}
        )
),

store_purchases as (
    select
        source_records.customer_id,
        'pos_transactions' as source_name,
        pos_transactions.transaction_id as source_record_id,
        'store' as channel,
        pos_transactions.transacted_at,
        pos_transactions.total_amount as amount
    from pos_transactions
    inner join source_records
        on
            source_records.source = 'pos_transactions'
            and pos_transactions.transaction_id = source_records.source_record_id
),

purchases as (
    select * from online_purchases
    union all
    select * from store_purchases
),

final as (
    select
        {{ dbt.concat(['source_name', "':'", 'source_record_id']) }} as transaction_id,
        customer_id,
        source_name,
        source_record_id,
        channel,
        transacted_at,
        cast(coalesce(amount, 0) as decimal(18, 2)) as amount
    from purchases
    where customer_id is not null
)

select * from final
