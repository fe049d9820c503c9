-- grain: one row per customer id whose identifiers moved in this run, under its old and new id
-- (registry flag changed_this_run). The incremental marts (customer_events, customers) rewrite
-- the rows of these customers.
with assignments as (
    select * from {{ ref('int_identity_customer_ids_assigned') }}
    where changed_this_run
),

final as (
    select customer_id from assignments
    union
    select previous_customer_id as customer_id from assignments
    where previous_customer_id is not null
)

select * from final
