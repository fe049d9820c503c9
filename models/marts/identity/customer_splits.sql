-- grain: one row per recorded split (customer_split_id): identifiers that left a surviving
-- customer id for another profile in one run, with the rule that separated them
-- Rules apply to history: adding a blocklist value or tightening a limit splits, on the next run,
-- the profiles that were merged through it, and the split lands here. Kept for ever.
{{
    config(
        materialized='incremental',
        unique_key='customer_split_id',
        incremental_strategy=appended_history_strategy(),
        full_refresh=false,
        on_schema_change='fail',
    )
}}

with assignments as (
    select * from {{ ref('int_identity_customer_ids_assigned') }}
),

edges as (
    select * from {{ ref('identity_edges') }}
),

exclusions as (
    select * from {{ ref('int_identity_exclusions') }}
),

active_ids as (
    select distinct customer_id
    from assignments
    where is_active
),

this_run as (
    select
        max(assigned_at) as split_at,
        max(run_number) as run_number
    from assignments
),

moved as (
    select
        previous_customer_id as customer_id,
        customer_id as split_customer_id,
        count(*) as identifiers_moved
    from assignments
    where
        is_active
        and previous_customer_id is not null
        and previous_customer_id <> customer_id
        and previous_customer_id in (select active_ids.customer_id from active_ids)
    group by previous_customer_id, customer_id
),

cut_edges as (
    -- edges, now not kept, between the profile that stayed and the one that left
    select
        stayed.customer_id,
        departed.customer_id as split_customer_id,
        min(edges.drop_reason) as drop_reason
    from edges
    inner join assignments as stayed
        on
            {{ identity_key('edges.identifier_type_a', 'edges.identifier_value_a') }}
            = stayed.identifier_key
    inner join assignments as departed
        on
            {{ identity_key('edges.identifier_type_b', 'edges.identifier_value_b') }}
            = departed.identifier_key
    where not edges.is_kept
    group by stayed.customer_id, departed.customer_id
),

excluded_members as (
    -- identifiers of the old profile that are now excluded (blocklist, hub, shared)
    select
        assignments.customer_id,
        min(exclusions.exclusion_reason) as exclusion_reason
    from assignments
    inner join exclusions on assignments.identifier_key = exclusions.identifier_key
    where not assignments.is_active
    group by assignments.customer_id
),

final as (
    select
        cast({{ dbt.concat([
            'moved.customer_id', "'>'", 'moved.split_customer_id', "'@'",
            'cast(this_run.run_number as ' ~ dbt.type_string() ~ ')',
        ]) }} as {{ type_varchar() }}) as customer_split_id,
        cast(moved.customer_id as {{ type_varchar() }}) as customer_id,
        cast(moved.split_customer_id as {{ type_varchar() }}) as split_customer_id,
        cast(moved.identifiers_moved as {{ dbt.type_bigint() }}) as identifiers_moved,
        this_run.split_at,
        cast(coalesce(
            cut_a.drop_reason,
            cut_b.drop_reason,
            excluded_members.exclusion_reason,
            'no_longer_linked'
        ) as {{ type_varchar() }}) as reason
    from moved
    cross join this_run
    left join cut_edges as cut_a
        on
            moved.customer_id = cut_a.customer_id
            and moved.split_customer_id = cut_a.split_customer_id
    left join cut_edges as cut_b
        on
            moved.customer_id = cut_b.split_customer_id
            and moved.split_customer_id = cut_b.customer_id
    left join excluded_members on moved.customer_id = excluded_members.customer_id
)

select * from final
