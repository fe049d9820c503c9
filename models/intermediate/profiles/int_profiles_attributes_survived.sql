-- grain: one row per customer_id and attribute: the surviving value with its provenance
-- Rules per attribute in var `survivorship`: source_priority (first listed source wins, then
-- most recent), most_recent, most_frequent (then most recent), first_seen. Ties: smaller value.
-- A rectification (source privacy_rectification, GDPR Art. 16) outranks every rule and source.
{%- set rules = survivorship_rules() %}
{#- Declared inputs (inputs/*.yml) are candidates too, after a rule's listed sources
    (survivorship_rules). #}

with candidates as (
    select * from {{ ref('int_profiles_attribute_candidates') }}
),

counted as (
    select
        candidates.*,
        count(*) over (
            partition by candidates.customer_id, candidates.attribute, candidates.attribute_value
        ) as value_frequency,
        max(candidates.observed_at) over (
            partition by candidates.customer_id, candidates.attribute, candidates.attribute_value
        ) as value_last_observed_at
    from candidates
),

ranked as (
    {%- for attribute, rule in rules.items() %}
        {%- set sources = rule.get('sources') or [] %}
                {{ 'union all' if not loop.first }}
        select
            customer_id,
            attribute,
            attribute_value,
            source,
            observed_at,
            row_number() over (
                partition by customer_id
                order by
                    case when source = 'privacy_rectification' then 0 else 1 end,
                    {% if rule['rule'] == 'source_priority' -%}
                        case source
                            {%- for source in sources %}
                                when '{{ source }}' then {{ loop.index }}
                            {%- endfor %}
                            else {{ sources | length + 1 }}
                        end,
                        observed_at desc,
                    {%- elif rule['rule'] == 'most_recent' %}
                        observed_at desc,
                    {%- elif rule['rule'] == 'most_frequent' %}
                        value_frequency desc,
                        value_last_observed_at desc,
                        observed_at desc,
                    {%- elif rule['rule'] == 'first_seen' %}
                observed_at,
            {%- else %}
                {{ exceptions.raise_compiler_error(
                    "var survivorship." ~ attribute ~ ".rule: unknown rule '" ~ rule['rule']
                    ~ "' (source_priority, most_recent, most_frequent, first_seen)") }}
            {%- endif %}
                    attribute_value asc,
                    source asc
            ) as survivor_rank
        from counted
        where
            attribute = '{{ attribute }}'
            {%- if sources %}
                and source in (
                    {% for source in ['privacy_rectification'] + sources %}                        '{{ source }}'{{ ', ' if not loop.last }}                        {% endfor %}
                )
            {%- endif %}
    {%- endfor %}
),

final as (
    select
        customer_id,
        attribute,
        attribute_value,
        source as attribute_source,
        observed_at as attribute_updated_at
    from ranked
    where survivor_rank = 1
)

select * from final
