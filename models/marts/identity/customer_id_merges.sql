-- grain: one row per retired customer id (old_customer_id), kept for ever
-- When profiles merge, the survivor keeps its id (most shared identifiers, then oldest) and the
-- other ids are retired here. current_customer_id follows later merges too, so a lookup by any
-- id ever issued resolves: coalesce(merges.current_customer_id, the id itself).
-- Never full-refresh this model: the history of retired ids would be lost (full_refresh: false).
{{
    config(
        materialized='incremental',
        unique_key='old_customer_id',
        incremental_strategy=rebuilt_history_strategy(),
        full_refresh=false,
        on_schema_change='fail',
    )
}}

with assignments as (
    select * from {{ ref('int_identity_customer_ids_assigned') }}
),

active_ids as (
    select distinct customer_id
    from assignments
    where is_active
),

this_run as (
    select max(assigned_at) as merged_at
    from assignments
    where is_active
),

moves as (
    select
        previous_customer_id as old_customer_id,
        customer_id as new_customer_id,
        count(*) as identifiers_moved
    from assignments
    where
        is_active
        and previous_customer_id is not null
        and previous_customer_id <> customer_id
        and previous_customer_id not in (select active_ids.customer_id from active_ids)
    group by previous_customer_id, customer_id
),

retired as (
    {{ deduplicate('moves', 'old_customer_id', 'identifiers_moved desc, new_customer_id') }}
),

new_merges as (
    select
        retired.old_customer_id,
        retired.new_customer_id,
        retired.new_customer_id as current_customer_id,
        this_run.merged_at,
        cast(
            'merged: its profile joined one that kept its id (more shared identifiers, then older)'
            as {{ dbt.type_string() }}
        ) as reason
    from retired
    cross join this_run
),

{% if is_incremental() %}
earlier_merges as (
    -- follow this run's merges one step: earlier current ids were all active last run
    select
        earlier.old_customer_id,
        earlier.new_customer_id,
        coalesce(new_merges.new_customer_id, earlier.current_customer_id) as current_customer_id,
        earlier.merged_at,
        earlier.reason
    from {{ this }} as earlier
    left join new_merges on earlier.current_customer_id = new_merges.old_customer_id
    where earlier.old_customer_id not in (select new_merges.old_customer_id from new_merges)
),
{% endif %}

all_merges as (
    select * from new_merges
    {% if is_incremental() %}
    union all
    select * from earlier_merges
    {% endif %}
),

final as (
    select
        cast(old_customer_id as {{ type_varchar() }}) as old_customer_id,
        cast(new_customer_id as {{ type_varchar() }}) as new_customer_id,
        cast(current_customer_id as {{ type_varchar() }}) as current_customer_id,
        merged_at,
        cast(reason as {{ type_varchar() }}) as reason
    from all_merges
)

select * from final
