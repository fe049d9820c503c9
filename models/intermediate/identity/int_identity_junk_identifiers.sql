-- grain: one row per identifier judged junk by the data (node_id), with the evidence
-- An identifier whose records carry more distinct values of one evidence type (another identifier
-- type, `name` or `last_name`) than var identity.junk_max_distinct allows is junk: a guest-checkout
-- placeholder
-- email behind a hundred orders with a hundred phones, a store's phone, a kiosk device. It is
-- excluded from merging whether or not it is on a list (the lists stay as a fast path).
-- evidence_type is the evidence furthest over its threshold; junk_detail lists every one that is.
{%- set settings = var('identity') %}
{%- set junk = settings.get('junk_max_distinct') or {} %}
{%- set thresholds = [] %}
{%- for identifier_type in identity_types() %}
    {%- set merged = dict(junk.get('default') or {}) %}
    {%- do merged.update(junk.get(identifier_type) or {}) %}
    {%- for evidence_type, max_distinct in merged.items() %}
        {%- if max_distinct is not none and evidence_type != identifier_type %}
            {%- do thresholds.append((identifier_type, evidence_type, max_distinct)) %}
        {%- endif %}
    {%- endfor %}
{%- endfor %}

with observed as (
    select * from {{ ref('int_identity_identifiers_observed') }}
    where is_linking
),

record_names as (
    select * from {{ ref('int_identity_record_names') }}
),

thresholds as (
    {%- for identifier_type, evidence_type, max_distinct in thresholds %}
        {{ 'union all' if not loop.first }}
        select
            cast('{{ identifier_type }}' as {{ dbt.type_string() }}) as identifier_type,
            cast('{{ evidence_type }}' as {{ dbt.type_string() }}) as evidence_type,
            {{ max_distinct }} as max_distinct
    {%- endfor %}
    {%- if not thresholds %}
        select
            cast(null as {{ dbt.type_string() }}) as identifier_type,
            cast(null as {{ dbt.type_string() }}) as evidence_type,
            0 as max_distinct
        where 1 = 0
    {%- endif %}
),

identifier_counts as (
    -- each identifier with the count of distinct identifiers of every other type its records
    -- carry: one pass over the record's identifier pairs, counted as it is grouped
    select
        judged.identifier_type,
        judged.identifier_value,
        other.identifier_type as evidence_type,
        count(distinct other.identifier_value) as evidence_count
    from observed as judged
    inner join observed as other
        on
            judged.source = other.source
            and judged.source_record_id = other.source_record_id
            and judged.identifier_type != other.identifier_type
    group by judged.identifier_type, judged.identifier_value, other.identifier_type
),

name_counts as (
    -- ... and of the names and last names they carry (the names view read once)
    select
        observed.identifier_type,
        observed.identifier_value,
        count(distinct record_names.person_name) as name_count,
        count(distinct record_names.last_name) as last_name_count
    from observed
    inner join record_names
        on
            observed.source = record_names.source
            and observed.source_record_id = record_names.source_record_id
    group by observed.identifier_type, observed.identifier_value
),

evidence_counts as (
    select
        identifier_type,
        identifier_value,
        evidence_type,
        evidence_count
    from identifier_counts
    union all
    select
        identifier_type,
        identifier_value,
        'name' as evidence_type,
        name_count as evidence_count
    from name_counts
    union all
    select
        identifier_type,
        identifier_value,
        'last_name' as evidence_type,
        last_name_count as evidence_count
    from name_counts
),

over_threshold as (
    select
        evidence_counts.identifier_type,
        evidence_counts.identifier_value,
        evidence_counts.evidence_type,
        thresholds.max_distinct,
        evidence_counts.evidence_count
    from evidence_counts
    inner join thresholds
        on
            evidence_counts.identifier_type = thresholds.identifier_type
            and evidence_counts.evidence_type = thresholds.evidence_type
    where evidence_counts.evidence_count > thresholds.max_distinct
),

ranked as (
    select
        identifier_type,
        identifier_value,
        evidence_type,
        max_distinct,
        evidence_count,
        {{ dbt.concat([
            'cast(evidence_count as ' ~ dbt.type_string() ~ ')', "' distinct '", 'evidence_type',
            "' (max '", 'cast(max_distinct as ' ~ dbt.type_string() ~ ')', "')'",
        ]) }} as evidence_text,
        row_number() over (
            partition by identifier_type, identifier_value
            order by
                cast(evidence_count as {{ dbt.type_float() }}) / (max_distinct + 1) desc,
                evidence_type asc
        ) as evidence_rank
    from over_threshold
),

details as (
    select
        identifier_type,
        identifier_value,
        {{ sorted_listagg('evidence_text', "', '") }} as junk_detail
    from ranked
    group by identifier_type, identifier_value
),

main_evidence_records as (
    -- the records of each junk identifier, with its main evidence type (few identifiers)
    select
        observed.source,
        observed.source_record_id,
        ranked.identifier_type,
        ranked.identifier_value,
        ranked.evidence_type
    from ranked
    inner join observed
        on
            ranked.identifier_type = observed.identifier_type
            and ranked.identifier_value = observed.identifier_value
    where ranked.evidence_rank = 1
),

main_evidence_values as (
    -- the distinct values of that type those records carry
    select
        main_evidence_records.identifier_type,
        main_evidence_records.identifier_value,
        observed.identifier_value as evidence_value
    from main_evidence_records
    inner join observed
        on
            main_evidence_records.source = observed.source
            and main_evidence_records.source_record_id = observed.source_record_id
            and main_evidence_records.evidence_type = observed.identifier_type
    union
    select
        main_evidence_records.identifier_type,
        main_evidence_records.identifier_value,
        case
            when main_evidence_records.evidence_type = 'name' then record_names.person_name
            else record_names.last_name
        end as evidence_value
    from main_evidence_records
    inner join record_names
        on
            main_evidence_records.source = record_names.source
            and main_evidence_records.source_record_id = record_names.source_record_id
    where main_evidence_records.evidence_type in ('name', 'last_name')
),

examples as (
    -- the three smallest values of the main evidence type, as examples
    select
        identifier_type,
        identifier_value,
        evidence_value,
        row_number() over (
            partition by identifier_type, identifier_value
            order by evidence_value
        ) as example_rank
    from main_evidence_values
),

example_lists as (
    select
        identifier_type,
        identifier_value,
        {{ sorted_listagg('evidence_value', "', '") }} as evidence_examples
    from examples
    where example_rank <= 3
    group by identifier_type, identifier_value
),

final as (
    select
        {{ identity_node_id('ranked.identifier_type', 'ranked.identifier_value') }} as node_id,
        ranked.identifier_type,
        ranked.identifier_value,
        ranked.evidence_type,
        ranked.evidence_count,
        example_lists.evidence_examples,
        details.junk_detail
    from ranked
    inner join details
        on
            ranked.identifier_type = details.identifier_type
            and ranked.identifier_value = details.identifier_value
    inner join example_lists
        on
            ranked.identifier_type = example_lists.identifier_type
            and ranked.identifier_value = example_lists.identifier_value
    where ranked.evidence_rank = 1
)

select * from final
