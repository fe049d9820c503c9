-- grain: one row per order line (order_line_id)
with source as (
    select * from {{ source('shop', 'shop_order_lines') }}
),

deduplicated as (
    {{ deduplicate('source', 'line_id', '_loaded_at desc, _source_file, _source_line') }}
),

final as (
    select
        cast(line_id as {{ dbt.type_string() }}) as order_line_id,
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        {{ normalize_identifier('sku') }} as sku,
        trim(product_name) as product_name,
        {{ normalize_code('category') }} as category,
        cast(quantity as decimal(18, 3)) as quantity,
        cast(unit_price as decimal(18, 2)) as unit_price,
        cast(quantity * unit_price as decimal(18, 2)) as line_amount,
        {{ to_utc('_loaded_at') }} as loaded_at
    from deduplicated
    where line_id is not null
)

select * from final
