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

record_evidence as (
    -- every identifier and name of every record
    select
        source,
        source_record_id,
        identifier_type as evidence_type,
        identifier_value as evidence_value
    from observed
    union all
    select
        source,
        source_record_id,
        'name' as evidence_type,
        person_name as evidence_value
    from record_names
    union all
    select
        source,
        source_record_id,
        'last_name' as evidence_type,
        last_name as evidence_value
    from record_names
),

evidence as (
    -- each judged identifier with the distinct evidence values its records carry
    select distinct
        observed.identifier_type,
        observed.identifier_value,
        record_evidence.evidence_type,
        record_evidence.evidence_value,
        thresholds.max_distinct
    from observed
    inner join thresholds on observed.identifier_type = thresholds.identifier_type
    inner join record_evidence
        on
            observed.source = record_evidence.source
            and observed.source_record_id = record_evidence.source_record_id
            and thresholds.evidence_type = record_evidence.evidence_type
),

over_threshold as (
    select
        identifier_type,
        identifier_value,
        evidence_type,
        max_distinct,
        count(*) as evidence_count
    from evidence
    group by identifier_type, identifier_value, evidence_type, max_distinct
    having count(*) > max_distinct
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

examples as (
    -- the three smallest values of the main evidence type, as examples
    select
        evidence.identifier_type,
        evidence.identifier_value,
        evidence.evidence_value,
        row_number() over (
            partition by evidence.identifier_type, evidence.identifier_value
            order by evidence.evidence_value
        ) as example_rank
    from evidence
    inner join ranked
        on
            evidence.identifier_type = ranked.identifier_type
            and evidence.identifier_value = ranked.identifier_value
            and evidence.evidence_type = ranked.evidence_type
            and ranked.evidence_rank = 1
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
