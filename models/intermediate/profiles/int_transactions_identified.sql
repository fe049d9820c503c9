-- grain: one row per purchase (transaction_id), online or in store, attributed to a customer_id
-- The purchase rule, in one place: a shop order not in var features.excluded_order_statuses, or a
-- store transaction, of any date. customers counts these; int_transactions_attributed keeps those
-- before the as-of date for the features and the predictions.
{#- A declared input whose events are purchases (events.purchase online/store, inputs/*.yml)
    adds its records, amount = revenue. #}
{%- set features = var('features') %}
{%- set purchase_inputs = [] %}
{%- for entry in declared_inputs() if (entry.get('events') or {}).get('purchase') %}
    {%- do purchase_inputs.append(entry) %}
{%- endfor %}

with source_records as (
    select * from {{ ref('int_source_records_assigned') }}
),

shop_orders as (
    select * from {{ ref('stg_shop__orders') }}
),

pos_transactions as (
    select * from {{ ref('stg_pos__transactions') }}
),
{%- for entry in purchase_inputs %}

    {{ entry.source }} as (
        select * from {{ ref(entry.model) }}
    ),
{%- endfor %}

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

{%- for entry in purchase_inputs %}
    {%- set revenue = entry.events.revenue %}

    {{ entry.source }}_purchases as (
        select
            source_records.customer_id,
            '{{ entry.source }}' as source_name,
            cast({{ entry.source }}.{{ entry.record_id }} as {{ dbt.type_string() }})
                as source_record_id,
            '{{ entry.events.purchase }}' as channel,
            {{ entry.source }}.{{ entry.seen_at }} as transacted_at,
            {{ entry.source ~ '.' ~ revenue if revenue else 'cast(null as decimal(18, 2))' }}
                as amount
        from {{ entry.source }}
        inner join source_records
            on
                source_records.source = '{{ entry.source }}'
                and cast({{ entry.source }}.{{ entry.record_id }} as {{ dbt.type_string() }})
                = source_records.source_record_id
    ),
{%- endfor %}

purchases as (
    select * from online_purchases
    union all
    select * from store_purchases
    {%- for entry in purchase_inputs %}
        union all
        select * from {{ entry.source }}_purchases
    {%- endfor %}
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
