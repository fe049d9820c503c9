-- grain: one row per purchase (transaction_id) before the as-of date, attributed to a customer_id
-- The purchase rule is int_transactions_identified's; this model only cuts at the as-of date.
with transactions as (
    select * from {{ ref('int_transactions_identified') }}
),

final as (
    select
        transaction_id,
        customer_id,
        source_name,
        source_record_id,
        channel,
        transacted_at,
        amount
    from transactions
    where transacted_at < {{ as_of_timestamp() }}
)

select * from final
