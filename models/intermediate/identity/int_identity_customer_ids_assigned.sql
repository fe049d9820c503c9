-- grain: one row per identifier ever seen (identifier_key), with its current customer_id
-- The registry that keeps customer ids stable: the graph is rebuilt from staged data on every run
-- and each new profile takes over the customer_id of the previous run that holds most of its
-- identifiers (each previous id goes to at most one profile: the one holding most of its
-- identifiers; ties go to the older id, then the smaller). Previous ids not taken over are
-- retired (see customer_id_merges); profiles without one get a new id derived from their smallest
-- identifier and the run number, so ids never collide with ids issued before.
-- changed_this_run flags identifiers that are new, changed customer or became (in)active: the
-- incremental timeline (customer_events) re-keys only the events of those customers.
-- Never full-refresh this model: that forgets every issued id (full_refresh: false).
{{
    config(
        materialized='incremental',
        unique_key='identifier_key',
        incremental_strategy=rebuilt_history_strategy(),
        full_refresh=false,
        on_schema_change='append_new_columns',
    )
}}

with nodes as (
    select * from {{ ref('int_identity_nodes') }}
),

components as (
    select * from {{ ref('int_identity_components') }}
),

exclusions as (
    select * from {{ ref('int_identity_exclusions') }}
),

{% if is_incremental() %}
previous as (
    select * from {{ this }}
),
{% else %}
    previous as (
        select
            cast(null as {{ dbt.type_string() }}) as identifier_key,
            cast(null as {{ dbt.type_string() }}) as identifier_type,
            cast(null as {{ dbt.type_string() }}) as identifier_value,
            cast(null as {{ dbt.type_string() }}) as customer_id,
            cast(null as {{ dbt.type_string() }}) as previous_customer_id,
            cast(null as {{ dbt.type_timestamp() }}) as customer_id_issued_at,
            cast(null as {{ dbt.type_timestamp() }}) as assigned_at,
            cast(null as {{ dbt.type_int() }}) as run_number,
            cast(null as boolean) as is_active
        where 1 = 0
    ),
{% endif %}

this_run as (
    select
        coalesce(max(run_number), 0) + 1 as run_number,
        {{ current_utc_timestamp() }} as assigned_at
    from previous
),

profiles as (
    -- every usable identifier with its profile (isolated identifiers are a profile of their own)
    select
        nodes.identifier_key,
        nodes.identifier_type,
        nodes.identifier_value,
        coalesce(components.component_id, nodes.node_id) as component_id
    from nodes
    left join components on nodes.node_id = components.node_id
    where nodes.node_id not in (select exclusions.node_id from exclusions)
),

previous_active as (
    select
        identifier_key,
        customer_id,
        customer_id_issued_at
    from previous
    where is_active
),

profile_keys as (
    select
        component_id,
        min(identifier_key) as smallest_identifier_key
    from profiles
    group by component_id
),

profile_overlaps as (
    select
        profiles.component_id,
        previous_active.customer_id,
        min(previous_active.customer_id_issued_at) as customer_id_issued_at,
        count(*) as shared_identifiers
    from profiles
    inner join previous_active on profiles.identifier_key = previous_active.identifier_key
    group by profiles.component_id, previous_active.customer_id
),

overlaps_keyed as (
    select
        profile_overlaps.*,
        profile_keys.smallest_identifier_key
    from profile_overlaps
    inner join profile_keys on profile_overlaps.component_id = profile_keys.component_id
),

claims as (
    -- each previous id is claimed by the profile holding most of its identifiers (ties: the
    -- profile with the smallest identifier key, so the choice depends on identifiers only)
    select
        overlaps_keyed.*,
        row_number() over (
            partition by overlaps_keyed.customer_id
            order by
                overlaps_keyed.shared_identifiers desc,
                overlaps_keyed.smallest_identifier_key asc
        ) as claim_rank
    from overlaps_keyed
),

survivors as (
    -- each profile keeps the claimed id holding most of its identifiers, then the oldest
    select
        component_id,
        customer_id,
        customer_id_issued_at,
        row_number() over (
            partition by component_id
            order by shared_identifiers desc, customer_id_issued_at asc, customer_id asc
        ) as survivor_rank
    from claims
    where claim_rank = 1
),

customer_ids as (
    select
        profile_keys.component_id,
        coalesce(
            survivors.customer_id,
            {{ dbt.concat([
                "'cus_'",
                dbt.right(dbt.hash(dbt.concat([
                    'profile_keys.smallest_identifier_key',
                    "'#'",
                    'cast(this_run.run_number as ' ~ dbt.type_string() ~ ')',
                ])), '20'),
            ]) }}
        ) as customer_id,
        coalesce(survivors.customer_id_issued_at, this_run.assigned_at) as customer_id_issued_at
    from profile_keys
    cross join this_run
    left join survivors
        on
            profile_keys.component_id = survivors.component_id
            and survivors.survivor_rank = 1
),

current_assignments as (
    select
        profiles.identifier_key,
        profiles.identifier_type,
        profiles.identifier_value,
        customer_ids.customer_id,
        previous.customer_id as previous_customer_id,
        customer_ids.customer_id_issued_at,
        this_run.assigned_at,
        this_run.run_number,
        true as is_active,
        (
            previous.identifier_key is null
            or not previous.is_active
            or previous.customer_id <> customer_ids.customer_id
        ) as changed_this_run
    from profiles
    inner join customer_ids on profiles.component_id = customer_ids.component_id
    cross join this_run
    left join previous on profiles.identifier_key = previous.identifier_key
),

no_longer_usable as (
    -- identifiers gone from the data or now excluded keep their last id, inactive
    select
        previous.identifier_key,
        previous.identifier_type,
        previous.identifier_value,
        previous.customer_id,
        previous.customer_id as previous_customer_id,
        previous.customer_id_issued_at,
        previous.assigned_at,
        this_run.run_number,
        false as is_active,
        previous.is_active as changed_this_run
    from previous
    cross join this_run
    where previous.identifier_key not in (select profiles.identifier_key from profiles)
),

final as (
    select * from current_assignments
    union all
    select * from no_longer_usable
)

select * from final
