-- grain: one row per store transaction (transaction_id)
with source as (
    select * from {{ source('pos', 'pos_transactions') }}
),

deduplicated as (
    {{ deduplicate('source', 'transaction_id', '_loaded_at desc, _source_file, _source_line') }}
),

final as (
    select
        cast(transaction_id as {{ dbt.type_string() }}) as transaction_id,
        {{ normalize_identifier('store_id') }} as store_id,
        {{ normalize_identifier('loyalty_id') }} as loyalty_id,
        {{ to_utc('transacted_at') }} as transacted_at,
        cast(total_amount as decimal(18, 2)) as total_amount,
        {{ normalize_currency('currency') }} as currency_code,
        {{ to_utc('_loaded_at') }} as loaded_at
    from deduplicated
    where
        transaction_id is not null
        and {{ as_of_filter(to_utc('transacted_at')) }}
)

select * from final
