-- grain: one row per experiment_id and variant (the holdout included)
-- Lift of a variant = its rate minus the holdout's; 95 % confidence interval by the normal
-- approximation: lift +/- 1.96 * sqrt(p_v (1 - p_v) / n_v + p_h (1 - p_h) / n_h) for the
-- conversion rate, lift +/- 1.96 * sqrt(var_v / n_v + var_h / n_h) for revenue per customer.
with assignments as (
    select * from {{ ref('stg_experiments__assignments') }}
),

retired_ids as (
    select * from {{ ref('customer_id_merges') }}
),

transactions as (
    select * from {{ ref('int_transactions_identified') }}
),

assignments_resolved as (
    -- a retired id's assignment counts for the id that holds its purchases now; a person
    -- assigned under several ids counts once, with the earliest assignment
    select
        assignments.experiment_id,
        coalesce(retired_ids.current_customer_id, assignments.customer_id) as customer_id,
        assignments.variant,
        assignments.window_days,
        assignments.assigned_at,
        assignments.window_ends_at,
        row_number() over (
            partition by
                assignments.experiment_id,
                coalesce(retired_ids.current_customer_id, assignments.customer_id)
            order by assignments.assigned_at asc, assignments.customer_id asc
        ) as assignment_rank
    from assignments
    left join retired_ids on assignments.customer_id = retired_ids.old_customer_id
),

customers_assigned as (
    select
        experiment_id,
        customer_id,
        variant,
        window_days,
        assigned_at,
        window_ends_at
    from assignments_resolved
    where assignment_rank = 1
),

outcomes as (
    -- purchases within the window from the assignment
    select
        customers_assigned.experiment_id,
        customers_assigned.customer_id,
        customers_assigned.variant,
        customers_assigned.window_days,
        count(transactions.transaction_id) as purchases,
        coalesce(sum(transactions.amount), 0) as revenue
    from customers_assigned
    left join transactions
        on
            customers_assigned.customer_id = transactions.customer_id
            and customers_assigned.assigned_at <= transactions.transacted_at
            and customers_assigned.window_ends_at > transactions.transacted_at
    group by
        customers_assigned.experiment_id,
        customers_assigned.customer_id,
        customers_assigned.variant,
        customers_assigned.window_days
),

by_variant as (
    select
        experiment_id,
        variant,
        max(window_days) as window_days,
        count(*) as customers,
        sum(case when purchases > 0 then 1 else 0 end) as converters,
        avg(case when purchases > 0 then 1.0 else 0.0 end) as conversion_rate,
        sum(revenue) as revenue,
        avg(cast(revenue as {{ dbt.type_float() }})) as revenue_per_customer,
        coalesce(var_samp(cast(revenue as {{ dbt.type_float() }})), 0) as revenue_variance
    from outcomes
    group by experiment_id, variant
),

compared as (
    select
        treated.*,
        holdout.conversion_rate as holdout_conversion_rate,
        holdout.revenue_per_customer as holdout_revenue_per_customer,
        sqrt(
            treated.conversion_rate * (1 - treated.conversion_rate) / treated.customers
            + holdout.conversion_rate * (1 - holdout.conversion_rate) / holdout.customers
        ) as conversion_lift_se,
        sqrt(
            treated.revenue_variance / treated.customers
            + holdout.revenue_variance / holdout.customers
        ) as revenue_lift_se
    from by_variant as treated
    left join by_variant as holdout
        on
            treated.experiment_id = holdout.experiment_id
            and holdout.variant = 'holdout'
            and treated.variant != 'holdout'
),

final as (
    select
        experiment_id,
        variant,
        variant = 'holdout' as is_holdout,
        cast(window_days as {{ dbt.type_int() }}) as window_days,
        cast(customers as {{ dbt.type_bigint() }}) as customers,
        cast(converters as {{ dbt.type_bigint() }}) as converters,
        cast(conversion_rate as decimal(18, 6)) as conversion_rate,
        cast(revenue as decimal(18, 2)) as revenue,
        cast(revenue_per_customer as decimal(18, 2)) as revenue_per_customer,
        cast(conversion_rate - holdout_conversion_rate as decimal(18, 6)) as conversion_lift,
        cast(
            conversion_rate - holdout_conversion_rate - 1.96 * conversion_lift_se
            as decimal(18, 6)
        ) as conversion_lift_ci_low,
        cast(
            conversion_rate - holdout_conversion_rate + 1.96 * conversion_lift_se
            as decimal(18, 6)
        ) as conversion_lift_ci_high,
        cast(
            revenue_per_customer - holdout_revenue_per_customer as decimal(18, 2)
        ) as revenue_lift,
        cast(
            revenue_per_customer - holdout_revenue_per_customer - 1.96 * revenue_lift_se
            as decimal(18, 2)
        ) as revenue_lift_ci_low,
        cast(
            revenue_per_customer - holdout_revenue_per_customer + 1.96 * revenue_lift_se
            as decimal(18, 2)
        ) as revenue_lift_ci_high
    from compared
)

select * from final
