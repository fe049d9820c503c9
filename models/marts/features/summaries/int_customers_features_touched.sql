-- grain: one row per customer_id whose features an incremental run of the feature models
-- recomputes (docs/features.md, "Incremental within a day").
-- The feature models (the four int_customers_*_summarised and customer_features) replace the rows
-- of these customers and keep every other row. A customer is touched when:
--   * its identifiers moved this run (int_identity_customers_changed, old and new ids), or
--   * it has feature rows but no profile any more (its rows are removed), or
--   * customer_events wrote one of its events after customer_features' timeline watermark, or
--   * customer_features was computed on an earlier UTC day than this run, or is missing, has no
--     watermark yet, or is rebuilt (--full-refresh): then every customer is touched, because
--     windows and recency move with the date.
-- The watermark lives in customer_features (its timeline_written_at, copied from this model), so a
-- run that fails after this model leaves it unmoved and the next run touches the same customers.
-- depends_on: {{ ref('int_identity_customers_changed') }}
{%- set features_node = graph.nodes.values() | selectattr('name', 'equalto', 'customer_features')
    | first if execute else none %}
{%- set features_relation = none %}
{%- if execute and features_node and not flags.FULL_REFRESH and not var('as_of', '') %}
    {%- set found = adapter.get_relation(
        database=features_node.database,
        schema=features_node.schema,
        identifier=features_node.alias,
    ) %}
    {%- if found and 'timeline_written_at' in (adapter.get_columns_in_relation(found)
        | map(attribute='name') | map('lower') | list) %}
        {%- set features_relation = found %}
    {%- endif %}
{%- endif %}

with customers as (
    select * from {{ ref('customers') }}
),

timeline as (
    select * from {{ ref('customer_events') }}
),

watermark as (
    select max(written_at) as timeline_written_at from timeline
),

{% if features_relation %}
    changed_customers as (
        select * from {{ ref('int_identity_customers_changed') }}
    ),

    features_built as (
        select
            max(timeline_written_at) as timeline_written_at,
            min(as_of_at) as as_of_at
        from {{ features_relation }}
    ),

    touched as (
        select customer_id from changed_customers
        union
        select timeline.customer_id
        from timeline
        cross join features_built
        where
            timeline.customer_id is not null
            and (
                features_built.timeline_written_at is null
                or timeline.written_at > features_built.timeline_written_at
            )
        union
        -- profiles that no longer exist (retired, or every identifier blocklisted): rows leave
        select features.customer_id
        from {{ features_relation }} as features
        left join customers on features.customer_id = customers.customer_id
        where customers.customer_id is null
        union
        -- a new UTC day (or an empty table): everyone
        select customers.customer_id
        from customers
        cross join features_built
        where
            features_built.as_of_at is null
            or cast(features_built.as_of_at as date) < cast({{ as_of_timestamp() }} as date)
    ),
{% else %}
    touched as (
        select customer_id from customers
    ),
{% endif %}

final as (
    select
        touched.customer_id,
        watermark.timeline_written_at
    from touched
    cross join watermark
)

select * from final
