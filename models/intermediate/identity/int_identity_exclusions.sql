-- grain: one row per identifier excluded from merging (node_id), with the reason and evidence
-- blocklist: listed in var identity.blocklist; junk: its records carry more distinct strong
-- identifiers or names than var identity.junk_max_distinct (int_identity_junk_identifiers); hub:
-- linked to more strong identifiers than var identity.hub_max_strong_neighbours; shared: a weak
-- identifier linked to separate strong profiles that are different people by strong evidence
-- (they hold different values of a var identity.conflict_types type: user ids, loyalty ids,
-- names), or to more of them than its type's max_profiles. A weak identifier joining up to
-- max_profiles profiles with no such conflict and, with var identity.bridge_requires_common_name,
-- a name in common (two fragments of one person) is not shared: it links them.
-- Any identifier linked to more identifiers of an `on_conflict: exclude` type than its
-- max_per_customer (two user ids behind one mailbox, not an account migration) is shared too.
{%- set settings = var('identity') %}
{%- set conflict_types = settings.get('conflict_types') or [] %}
{%- set identifier_conflict_types = conflict_types | reject('equalto', 'name') | list %}
{%- set conflict_type_list = "'" ~ (identifier_conflict_types | join("', '")) ~ "'" %}

with nodes as (
    select * from {{ ref('int_identity_nodes') }}
),

edges as (
    select * from {{ ref('int_identity_edges_ruled') }}
),

strong_components as (
    select * from {{ ref('int_identity_strong_components') }}
),

junk as (
    select * from {{ ref('int_identity_junk_identifiers') }}
),

observed as (
    select * from {{ ref('int_identity_identifiers_observed') }}
    where is_linking
),

record_names as (
    select * from {{ ref('int_identity_record_names') }}
),

blocklisted as (
    select node_id from nodes
    where is_blocklisted
),

degree_hubs as (
    select node_a as node_id from edges
    where is_hub_a
    union
    select node_b as node_id from edges
    where is_hub_b
),

conflicted_ends as (
    -- identifiers linked to more identifiers of an on_conflict: exclude type than allowed
    select
        node_a as node_id,
        conflict_type_a as conflict_type
    from edges
    where conflict_type_a is not null
    union
    select
        node_b as node_id,
        conflict_type_b as conflict_type
    from edges
    where conflict_type_b is not null
),

conflicted_neighbours as (
    -- each such identifier with its neighbours: one equi-join per edge end (node_a < node_b,
    -- so an edge is found once), not one join on either end
    select
        conflicted_ends.node_id,
        conflicted_ends.conflict_type,
        edges.node_b as neighbour_id
    from conflicted_ends
    inner join edges on conflicted_ends.node_id = edges.node_a
    union all
    select
        conflicted_ends.node_id,
        conflicted_ends.conflict_type,
        edges.node_a as neighbour_id
    from conflicted_ends
    inner join edges on conflicted_ends.node_id = edges.node_b
),

conflicted_evidence as (
    select
        conflicted_neighbours.node_id,
        conflicted_neighbours.conflict_type,
        count(*) as evidence_count,
        {{ sorted_listagg('neighbours.identifier_value', "', '") }} as evidence_examples
    from conflicted_neighbours
    inner join nodes as neighbours
        on
            conflicted_neighbours.neighbour_id = neighbours.node_id
            and conflicted_neighbours.conflict_type = neighbours.identifier_type
    group by conflicted_neighbours.node_id, conflicted_neighbours.conflict_type
),

strong_profiles as (
    -- every usable strong identifier with its strong profile (alone = a profile of its own)
    select
        nodes.node_id,
        nodes.identifier_type,
        nodes.identifier_value,
        coalesce(strong_components.component_id, nodes.node_id) as strong_component_id
    from nodes
    left join strong_components on nodes.node_id = strong_components.node_id
    where
        nodes.is_strong
        and not nodes.is_blocklisted
        and nodes.node_id not in (select junk.node_id from junk)
        and nodes.node_id not in (select degree_hubs.node_id from degree_hubs)
        and nodes.node_id not in (select conflicted_ends.node_id from conflicted_ends)
),

weak_to_strong as (
    -- each weak identifier with the strong profile of each strong identifier it is linked to
    select distinct
        case when node_a.is_strong then edges.node_b else edges.node_a end as node_id,
        strong_profiles.strong_component_id
    from edges
    inner join nodes as node_a on edges.node_a = node_a.node_id
    inner join nodes as node_b on edges.node_b = node_b.node_id
    inner join strong_profiles
        on
            case when node_a.is_strong then edges.node_a else edges.node_b end
            = strong_profiles.node_id
    where
        ((node_a.is_strong and not node_b.is_strong) or (node_b.is_strong and not node_a.is_strong))
        and coalesce(edges.drop_reason, '') not in ('junk', 'hub')
        and coalesce(edges.drop_reason, '') not like 'conflict:%'
),

linked_counts as (
    select
        weak_to_strong.node_id,
        count(*) as linked_profiles,
        max({{ identity_type_case('nodes.identifier_type', 'max_profiles', '1000000000') }})
            as max_profiles
    from weak_to_strong
    inner join nodes on weak_to_strong.node_id = nodes.node_id
    group by weak_to_strong.node_id
    having count(*) > 1
),

profile_pairs as (
    -- the profiles a weak identifier would join, in pairs, when there are few enough of them
    select
        first_profile.node_id,
        first_profile.strong_component_id as profile_a,
        second_profile.strong_component_id as profile_b
    from weak_to_strong as first_profile
    inner join weak_to_strong as second_profile
        on
            first_profile.node_id = second_profile.node_id
            and first_profile.strong_component_id < second_profile.strong_component_id
    inner join linked_counts on first_profile.node_id = linked_counts.node_id
    where linked_counts.linked_profiles <= linked_counts.max_profiles
),

candidate_profiles as (
    select profile_a as strong_component_id from profile_pairs
    union
    select profile_b as strong_component_id from profile_pairs
),

profile_evidence as (
    -- what says who a candidate profile is: its conflict-type identifiers and its records' names
    select distinct
        strong_profiles.strong_component_id,
        strong_profiles.identifier_type as evidence_type,
        strong_profiles.identifier_value as evidence_value
    from strong_profiles
    inner join candidate_profiles
        on strong_profiles.strong_component_id = candidate_profiles.strong_component_id
    where strong_profiles.identifier_type in ({{ conflict_type_list }})
    {%- if 'name' in conflict_types %}
        union
        select distinct
            strong_profiles.strong_component_id,
            'name' as evidence_type,
            record_names.person_name as evidence_value
        from record_names
        inner join observed
            on
                record_names.source = observed.source
                and record_names.source_record_id = observed.source_record_id
        inner join strong_profiles
            on
                observed.identifier_type = strong_profiles.identifier_type
                and observed.identifier_value = strong_profiles.identifier_value
        inner join candidate_profiles
            on strong_profiles.strong_component_id = candidate_profiles.strong_component_id
    {%- endif %}
),

pair_profile_evidence as (
    -- the evidence of each pair's two profiles, one equi-join per profile (profile_a <
    -- profile_b, so a row is one profile's)
    select
        profile_pairs.node_id,
        profile_pairs.profile_a,
        profile_pairs.profile_b,
        profile_evidence.evidence_type,
        profile_evidence.evidence_value,
        1 as in_a,
        0 as in_b
    from profile_pairs
    inner join profile_evidence on profile_pairs.profile_a = profile_evidence.strong_component_id
    union all
    select
        profile_pairs.node_id,
        profile_pairs.profile_a,
        profile_pairs.profile_b,
        profile_evidence.evidence_type,
        profile_evidence.evidence_value,
        0 as in_a,
        1 as in_b
    from profile_pairs
    inner join profile_evidence on profile_pairs.profile_b = profile_evidence.strong_component_id
),

pair_evidence as (
    select
        node_id,
        profile_a,
        profile_b,
        evidence_type,
        evidence_value,
        max(in_a) as in_a,
        max(in_b) as in_b
    from pair_profile_evidence
    group by node_id, profile_a, profile_b, evidence_type, evidence_value
),

pair_conflicts as (
    -- both profiles hold values of the type and share none: different people
    select
        node_id,
        profile_a,
        profile_b,
        evidence_type
    from pair_evidence
    group by node_id, profile_a, profile_b, evidence_type
    having sum(in_a * in_b) = 0 and sum(in_a) > 0 and sum(in_b) > 0
),

named_pairs as (
    -- pairs whose profiles share a name: positive evidence of one person
    select
        node_id,
        profile_a,
        profile_b
    from pair_evidence
    where evidence_type = 'name'
    group by node_id, profile_a, profile_b
    having sum(in_a * in_b) > 0
),

unconfirmed_weak as (
    -- weak identifiers joining a pair of profiles with no name in common
    {%- if settings.get('bridge_requires_common_name', true) %}
        select distinct profile_pairs.node_id
        from profile_pairs
        left join named_pairs
            on
                profile_pairs.node_id = named_pairs.node_id
                and profile_pairs.profile_a = named_pairs.profile_a
                and profile_pairs.profile_b = named_pairs.profile_b
        where named_pairs.node_id is null
    {%- else %}
        select node_id from profile_pairs
        where 1 = 0
    {%- endif %}
),

conflicting_weak as (
    select
        node_id,
        min(evidence_type) as evidence_type,
        count(distinct profile_a) + 1 as conflicting_profiles
    from pair_conflicts
    group by node_id
),

evidence_values as (
    select distinct
        node_id,
        evidence_type,
        evidence_value
    from pair_evidence
),

conflict_examples as (
    select
        conflicting_weak.node_id,
        {{ sorted_listagg('evidence_values.evidence_value', "', '") }} as evidence_examples
    from conflicting_weak
    inner join evidence_values
        on
            conflicting_weak.node_id = evidence_values.node_id
            and conflicting_weak.evidence_type = evidence_values.evidence_type
    group by conflicting_weak.node_id
),

shared_weak as (
    select
        linked_counts.node_id,
        linked_counts.linked_profiles,
        case
            when linked_counts.linked_profiles > linked_counts.max_profiles then 'profiles'
            when conflicting_weak.node_id is null then 'name'
            else conflicting_weak.evidence_type
        end as evidence_type,
        conflict_examples.evidence_examples,
        case
            when linked_counts.linked_profiles > linked_counts.max_profiles
                then {{ dbt.concat([
                    "'links '", 'cast(linked_profiles as ' ~ dbt.type_string() ~ ')',
                    "' separate profiles (max '",
                    'cast(max_profiles as ' ~ dbt.type_string() ~ ')', "')'",
                ]) }}
            when conflicting_weak.node_id is null
                then {{ dbt.concat([
                    "'links '", 'cast(linked_profiles as ' ~ dbt.type_string() ~ ')',
                    "' profiles with no name in common (var identity.bridge_requires_common_name)'",
                ]) }}
            else {{ dbt.concat([
                "'links '", 'cast(linked_profiles as ' ~ dbt.type_string() ~ ')',
                "' profiles of different people (different '", 'conflicting_weak.evidence_type',
                "')'",
            ]) }}
        end as exclusion_detail
    from linked_counts
    left join conflicting_weak on linked_counts.node_id = conflicting_weak.node_id
    left join conflict_examples on linked_counts.node_id = conflict_examples.node_id
    where
        linked_counts.linked_profiles > linked_counts.max_profiles
        or conflicting_weak.node_id is not null
        or linked_counts.node_id in (select unconfirmed_weak.node_id from unconfirmed_weak)
),

excluded as (
    select
        node_id,
        'blocklist' as exclusion_reason,
        'listed in var identity.blocklist' as exclusion_detail,
        cast(null as {{ dbt.type_string() }}) as evidence_type,
        cast(null as {{ dbt.type_bigint() }}) as evidence_count,
        cast(null as {{ dbt.type_string() }}) as evidence_examples
    from nodes
    where is_blocklisted
    union all
    select
        node_id,
        'junk' as exclusion_reason,
        {{ dbt.concat(["'records carry '", 'junk_detail']) }} as exclusion_detail,
        evidence_type,
        cast(evidence_count as {{ dbt.type_bigint() }}) as evidence_count,
        evidence_examples
    from junk
    where node_id not in (select blocklisted.node_id from blocklisted)
    union all
    select
        node_id,
        'hub' as exclusion_reason,
        'linked to more than {{ settings["hub_max_strong_neighbours"] }} strong identifiers'
            as exclusion_detail,
        cast(null as {{ dbt.type_string() }}) as evidence_type,
        cast(null as {{ dbt.type_bigint() }}) as evidence_count,
        cast(null as {{ dbt.type_string() }}) as evidence_examples
    from degree_hubs
    where
        node_id not in (select junk.node_id from junk)
        and node_id not in (select blocklisted.node_id from blocklisted)
    union all
    select
        node_id,
        'shared' as exclusion_reason,
        exclusion_detail,
        evidence_type,
        cast(linked_profiles as {{ dbt.type_bigint() }}) as evidence_count,
        evidence_examples
    from shared_weak
    where
        node_id not in (select degree_hubs.node_id from degree_hubs)
        and node_id not in (select junk.node_id from junk)
        and node_id not in (select conflicted_ends.node_id from conflicted_ends)
    union all
    select
        node_id,
        'shared' as exclusion_reason,
        {{ dbt.concat([
            "'linked to '", 'cast(evidence_count as ' ~ dbt.type_string() ~ ')', "' '",
            'conflict_type', "' that are not one account moving (conflict:'", 'conflict_type',
            "')'",
        ]) }} as exclusion_detail,
        conflict_type as evidence_type,
        cast(evidence_count as {{ dbt.type_bigint() }}) as evidence_count,
        evidence_examples
    from conflicted_evidence
    where
        node_id not in (select degree_hubs.node_id from degree_hubs)
        and node_id not in (select junk.node_id from junk)
),

final as (
    select
        nodes.node_id,
        nodes.identifier_type,
        nodes.identifier_value,
        nodes.identifier_key,
        excluded.exclusion_reason,
        excluded.exclusion_detail,
        excluded.evidence_type,
        excluded.evidence_count,
        excluded.evidence_examples
    from excluded
    inner join nodes on excluded.node_id = nodes.node_id
)

select * from final
