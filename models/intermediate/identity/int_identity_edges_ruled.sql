-- grain: one row per pair of linked identifiers (node_a < node_b), with the rule verdict
-- drop_reason: null = kept; 'junk' = an end is junk by the data (int_identity_junk_identifiers);
-- 'hub' = an end is linked to more strong identifiers than var identity.hub_max_strong_neighbours;
-- 'limit:<type>' = keeping the edge would give a profile more identifiers of <type> than its
-- max_per_customer and this edge is among the weaker ones; 'conflict:<type>' = an end is linked to
-- more identifiers of <type> than its max_per_customer and <type> has on_conflict: exclude (two
-- user ids behind one mailbox are two people: the identifier is shared, all its edges dropped).
-- Account migrations are no conflict: a neighbour of a type in var identity.account_migrations
-- .types, linked to an identifier of a `via` type by a record of one of its `sources` and never
-- seen after another neighbour of its type first appears (the old user id of an account that
-- moved), does not count against the limit (is_migration = true).
{%- set settings = var('identity') %}
{%- set migrations = settings.get('account_migrations') or {} %}
{%- set migration_types = migrations.get('types') or [] %}
{%- set migration_sources = migrations.get('sources') or [] %}
{%- set migration_via = migrations.get('via') or [] %}

with observed_edges as (
    select * from {{ ref('int_identity_edges_observed') }}
),

nodes as (
    select * from {{ ref('int_identity_nodes') }}
),

junk as (
    select * from {{ ref('int_identity_junk_identifiers') }}
),

node_ids_observed as (
    select
        observed_edges.source,
        observed_edges.source_record_id,
        observed_edges.seen_at,
        {{ identity_node_id('observed_edges.identifier_type_a', 'observed_edges.identifier_value_a') }}
            as node_id_a,
        {{ identity_node_id('observed_edges.identifier_type_b', 'observed_edges.identifier_value_b') }}
            as node_id_b
    from observed_edges
),

edges_by_node as (
    -- both ends must be usable nodes (suppressed identifiers are not); ids are hashes of the keys
    select
        source,
        source_record_id,
        seen_at,
        case when node_id_a < node_id_b then node_id_a else node_id_b end as node_a,
        case when node_id_a < node_id_b then node_id_b else node_id_a end as node_b
    from node_ids_observed
    where
        node_id_a in (select nodes.node_id from nodes)
        and node_id_b in (select nodes.node_id from nodes)
),

first_records as (
    {{ deduplicate('edges_by_node', 'node_a, node_b', 'seen_at, source, source_record_id') }}
),

edge_stats as (
    select
        node_a,
        node_b,
        count(*) as record_count,
        min(seen_at) as first_seen_at,
        max(seen_at) as last_seen_at,
        max(case when source in ({{ "'" ~ (migration_sources | join("', '")) ~ "'" }}) then 1 else 0 end)
            as from_migration_source
    from edges_by_node
    group by node_a, node_b
),

edges as (
    select
        edge_stats.node_a,
        edge_stats.node_b,
        edge_stats.record_count,
        edge_stats.first_seen_at,
        edge_stats.last_seen_at,
        edge_stats.from_migration_source,
        first_records.source as first_source,
        first_records.source_record_id as first_source_record_id
    from edge_stats
    inner join first_records
        on
            edge_stats.node_a = first_records.node_a
            and edge_stats.node_b = first_records.node_b
),

directed as (
    select
        edges.node_a as node_id,
        edges.node_b as neighbour_id,
        edges.node_a,
        edges.node_b,
        edges.record_count,
        edges.last_seen_at,
        edges.from_migration_source
    from edges
    union all
    select
        edges.node_b as node_id,
        edges.node_a as neighbour_id,
        edges.node_a,
        edges.node_b,
        edges.record_count,
        edges.last_seen_at,
        edges.from_migration_source
    from edges
),

directed_typed as (
    select
        directed.*,
        neighbours.identifier_type as neighbour_type,
        neighbours.identifier_value as neighbour_value,
        neighbours.is_strong as neighbour_is_strong,
        neighbours.first_seen_at as neighbour_first_seen_at,
        neighbours.last_seen_at as neighbour_last_seen_at,
        owners.identifier_type as node_type
    from directed
    inner join nodes as neighbours on directed.neighbour_id = neighbours.node_id
    inner join nodes as owners on directed.node_id = owners.node_id
),

degree_hubs as (
    select node_id
    from directed_typed
    where neighbour_is_strong
    group by node_id
    having count(*) > {{ settings['hub_max_strong_neighbours'] }}
),

excluded_ends as (
    select node_id from junk
    union
    select node_id from degree_hubs
),

latest_arrivals as (
    -- per identifier and migrating neighbour type, when its newest neighbour first appeared
    select
        node_id,
        neighbour_type,
        max(neighbour_first_seen_at) as newest_first_seen_at
    from directed_typed
    where neighbour_type in ({{ "'" ~ (migration_types | join("', '")) ~ "'" }})
    group by node_id, neighbour_type
),

migration_flagged as (
    select
        directed_typed.*,
        coalesce(
            directed_typed.node_type in ({{ "'" ~ (migration_via | join("', '")) ~ "'" }})
            and directed_typed.from_migration_source = 1
            and directed_typed.neighbour_last_seen_at < latest_arrivals.newest_first_seen_at,
            false
        ) as is_migration
    from directed_typed
    left join latest_arrivals
        on
            directed_typed.node_id = latest_arrivals.node_id
            and directed_typed.neighbour_type = latest_arrivals.neighbour_type
),

ranked as (
    -- per identifier and neighbour type, strongest edges first: more records, then more recent
    -- (the old identifiers of a migrated account are ranked apart and never over the limit)
    select
        migration_flagged.*,
        row_number() over (
            partition by
                migration_flagged.node_id,
                migration_flagged.neighbour_type,
                migration_flagged.is_migration
            order by
                migration_flagged.record_count desc,
                migration_flagged.last_seen_at desc,
                migration_flagged.neighbour_value asc
        ) as strength_rank,
        {{ identity_type_case('migration_flagged.neighbour_type', 'max_per_customer') }}
            as neighbour_type_limit
    from migration_flagged
    where
        migration_flagged.node_id not in (select excluded_ends.node_id from excluded_ends)
        and migration_flagged.neighbour_id not in (select excluded_ends.node_id from excluded_ends)
),

over_limit as (
    select
        node_a,
        node_b,
        min({{ dbt.concat(["'limit:'", 'neighbour_type']) }}) as drop_reason
    from ranked
    where not is_migration and strength_rank > neighbour_type_limit
    group by node_a, node_b
),

conflicted as (
    -- identifiers over the limit of a type whose conflicts exclude (on_conflict: exclude)
    select
        node_id,
        min(neighbour_type) as conflict_type
    from ranked
    where
        not is_migration
        and strength_rank > neighbour_type_limit
        and neighbour_type in ({{ identity_types_where('on_conflict', 'exclude') }})
    group by node_id
),

migrations as (
    select distinct
        node_a,
        node_b
    from ranked
    where is_migration
),

final as (
    select
        edges.node_a,
        edges.node_b,
        edges.record_count,
        edges.first_seen_at,
        edges.last_seen_at,
        edges.first_source,
        edges.first_source_record_id,
        node_a.is_strong and node_b.is_strong as is_strong_edge,
        edges.node_a in (select degree_hubs.node_id from degree_hubs) as is_hub_a,
        edges.node_b in (select degree_hubs.node_id from degree_hubs) as is_hub_b,
        migrations.node_a is not null as is_migration,
        conflicted_a.conflict_type as conflict_type_a,
        conflicted_b.conflict_type as conflict_type_b,
        case
            when
                edges.node_a in (select junk.node_id from junk)
                or edges.node_b in (select junk.node_id from junk)
                then 'junk'
            when
                edges.node_a in (select degree_hubs.node_id from degree_hubs)
                or edges.node_b in (select degree_hubs.node_id from degree_hubs)
                then 'hub'
            when conflicted_a.node_id is not null
                then {{ dbt.concat(["'conflict:'", 'conflicted_a.conflict_type']) }}
            when conflicted_b.node_id is not null
                then {{ dbt.concat(["'conflict:'", 'conflicted_b.conflict_type']) }}
            else over_limit.drop_reason
        end as drop_reason
    from edges
    inner join nodes as node_a on edges.node_a = node_a.node_id
    inner join nodes as node_b on edges.node_b = node_b.node_id
    left join over_limit
        on
            edges.node_a = over_limit.node_a
            and edges.node_b = over_limit.node_b
    left join migrations
        on
            edges.node_a = migrations.node_a
            and edges.node_b = migrations.node_b
    left join conflicted as conflicted_a on edges.node_a = conflicted_a.node_id
    left join conflicted as conflicted_b on edges.node_b = conflicted_b.node_id
)

select * from final
