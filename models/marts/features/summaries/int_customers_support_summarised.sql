-- grain: one row per customer_id with support tickets created before the as-of date
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

source_records as (
    select * from {{ ref('int_source_records_assigned') }}
    where {{ touched_customers_filter('customer_id') }}
),

tickets as (
    select * from {{ ref('stg_support__tickets') }}
),

customer_tickets as (
    select
        source_records.customer_id,
        tickets.ticket_id,
        tickets.created_at,
        tickets.csat,
        -- as of the as-of date: a ticket solved later was still open then
        case when tickets.solved_at < {{ as_of_at }} then tickets.solved_at end as solved_at
    from tickets
    inner join source_records
        on
            source_records.source = 'support_tickets'
            and tickets.ticket_id = source_records.source_record_id
    where
        source_records.customer_id is not null
        and tickets.created_at < {{ as_of_at }}
),

rated_tickets as (
    select
        customer_id,
        csat,
        solved_at
    from customer_tickets
    where csat is not null and solved_at is not null
),

last_rated_tickets as (
    {{ deduplicate('rated_tickets', 'customer_id', 'solved_at desc, csat') }}
),

tickets_by_customer as (
    select
        customer_id,
        sum(
            case
                when created_at >= {{ dbt.dateadd('day', -features['support_window_days'], as_of_at) }} then 1
                else 0
            end
        ) as support_tickets_365d,
        sum(case when solved_at is null then 1 else 0 end) as open_support_tickets,
        max(created_at) as last_ticket_at
    from customer_tickets
    group by customer_id
),

final as (
    select
        tickets_by_customer.customer_id,
        tickets_by_customer.support_tickets_365d,
        tickets_by_customer.open_support_tickets,
        tickets_by_customer.last_ticket_at,
        last_rated_tickets.csat as last_csat
    from tickets_by_customer
    left join last_rated_tickets
        on tickets_by_customer.customer_id = last_rated_tickets.customer_id
)

select * from final
