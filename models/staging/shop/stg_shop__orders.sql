-- grain: one row per order (order_id)
with source as (
    select * from {{ source('shop', 'shop_orders') }}
),

deduplicated as (
    {{ deduplicate('source', 'order_id', '_loaded_at desc, _source_file, _source_line') }}
),

with_phones as (
    {{ select_with_phone_e164('deduplicated', 'phone') }}
),

with_addresses as (
    {{ select_with_email_mailbox('with_phones', 'email') }}
),

final as (
    select
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        {{ normalize_identifier('shop_customer_id') }} as shop_customer_id,
        email_mailbox as email,
        email_original,
        {{ normalize_phone('phone_e164') }} as phone,
        {{ normalize_name('first_name') }} as first_name,
        {{ normalize_name('last_name') }} as last_name,
        {{ to_utc('ordered_at') }} as ordered_at,
        cast(total_amount as decimal(18, 2)) as total_amount,
        {{ normalize_currency('currency') }} as currency_code,
        {{ normalize_code('status') }} as order_status,
        {{ to_utc('_loaded_at') }} as loaded_at
    from with_addresses
    where
        order_id is not null
        and {{ as_of_filter(to_utc('ordered_at')) }}
)

select * from final
