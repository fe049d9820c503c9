-- grain: one row per usable identifier (node_id) where a conflict rule cut links or an account
-- migration kept them: conflict = linked to more identifiers of a type than its max_per_customer,
-- the weaker links dropped (limit:<type>); account_migration = linked to the old and the new id of
-- an account that moved (var identity.account_migrations), both kept. The identifier itself still
-- merges through its kept links; identity_exclusions lists it to explain the profile.
{%- set migration_types = (var('identity').get('account_migrations') or {}).get('types') or [] %}
with nodes as (
    select * from {{ ref('int_identity_nodes') }}
),

edges as (
    select * from {{ ref('int_identity_edges_ruled') }}
),

exclusions as (
    select * from {{ ref('int_identity_exclusions') }}
),

directed as (
    select
        node_a as node_id,
        node_b as neighbour_id,
        drop_reason,
        is_migration
    from edges
    union all
    select
        node_b as node_id,
        node_a as neighbour_id,
        drop_reason,
        is_migration
    from edges
),

typed as (
    select
        directed.node_id,
        directed.is_migration
        and neighbours.identifier_type in ({{ "'" ~ (migration_types | join("', '")) ~ "'" }})
            as is_migration,
        neighbours.identifier_type as neighbour_type,
        neighbours.identifier_value as neighbour_value,
        directed.drop_reason is null as is_kept,
        coalesce(
            directed.drop_reason = {{ dbt.concat(["'limit:'", 'neighbours.identifier_type']) }}, false
        ) as is_cut
    from directed
    inner join nodes as neighbours on directed.neighbour_id = neighbours.node_id
    where directed.drop_reason is null or directed.drop_reason like 'limit:%'
),

by_type as (
    select
        node_id,
        neighbour_type,
        sum(case when is_cut then 1 else 0 end) as cut_links,
        sum(case when is_kept then 1 else 0 end) as kept_links,
        sum(case when is_migration then 1 else 0 end) as migration_links,
        count(*) as linked
    from typed
    group by node_id, neighbour_type
    having
        sum(case when is_cut then 1 else 0 end) > 0
        or sum(case when is_migration then 1 else 0 end) > 0
),

ranked as (
    select
        node_id,
        neighbour_type,
        cut_links,
        kept_links,
        migration_links,
        linked,
        row_number() over (
            partition by node_id
            order by cut_links desc, migration_links desc, neighbour_type asc
        ) as type_rank
    from by_type
),

examples as (
    select
        typed.node_id,
        {{ sorted_listagg('typed.neighbour_value', "', '") }} as evidence_examples
    from typed
    inner join ranked
        on
            typed.node_id = ranked.node_id
            and typed.neighbour_type = ranked.neighbour_type
            and ranked.type_rank = 1
    where typed.is_cut or typed.is_kept
    group by typed.node_id
),

final as (
    select
        ranked.node_id,
        nodes.identifier_type,
        nodes.identifier_value,
        nodes.identifier_key,
        case when ranked.cut_links > 0 then 'conflict' else 'account_migration' end
            as exclusion_reason,
        case
            when ranked.cut_links > 0
                then {{ dbt.concat([
                    "'linked to '", 'cast(ranked.linked as ' ~ dbt.type_string() ~ ')', "' '",
                    'ranked.neighbour_type', "' (max '",
                    identity_type_case('ranked.neighbour_type', 'max_per_customer'),
                    "' a profile): kept the strongest, cut '",
                    'cast(ranked.cut_links as ' ~ dbt.type_string() ~ ')', "' (limit:'",
                    'ranked.neighbour_type', "')'",
                ]) }}
            else {{ dbt.concat([
                "'account migration: '", 'cast(ranked.linked as ' ~ dbt.type_string() ~ ')',
                "' '", 'ranked.neighbour_type',
                "' used one after the other, kept together (var identity.account_migrations)'",
            ]) }}
        end as exclusion_detail,
        ranked.neighbour_type as evidence_type,
        cast(ranked.linked as {{ dbt.type_bigint() }}) as evidence_count,
        examples.evidence_examples
    from ranked
    inner join nodes on ranked.node_id = nodes.node_id
    inner join examples on ranked.node_id = examples.node_id
    where
        ranked.type_rank = 1
        and ranked.node_id not in (select exclusions.node_id from exclusions)
)

select * from final
