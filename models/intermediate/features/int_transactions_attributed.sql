-- grain: one row per purchase (transaction_id), online or in store, attributed to a customer_id
{%- set features = var('features') %}
{%- set as_of_at = as_of_timestamp() %}

with source_records as (
    select * from {{ ref('customer_source_records') }}
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
        shop_orders.ordered_at < {{ as_of_at }}
        and coalesce(shop_orders.order_status, 'completed') not in (
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
    where pos_transactions.transacted_at < {{ as_of_at }}
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
