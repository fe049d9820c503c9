-- grain: one row per customer_id: the parts of the golden profile beyond its identifiers
-- Surviving attributes with provenance, the sources seen, purchases (the purchase rule of
-- int_transactions_identified, any date) and the consent columns; customers joins them to the
-- identity summary of each profile it rebuilds.
-- noqa: disable=RF04
-- (`source` and `attribute` are column names of the models this one reads)
{%- set attributes = ['first_name', 'last_name', 'primary_email', 'primary_phone', 'city',
                      'country_code', 'loyalty_tier'] %}

with assignments as (
    select * from {{ ref('int_identity_customer_ids_assigned') }}
    where is_active
),

survived as (
    select * from {{ ref('int_profiles_attributes_survived') }}
),

source_records as (
    select * from {{ ref('int_source_records_assigned') }}
),

transactions as (
    select * from {{ ref('int_transactions_identified') }}
),

consents as (
    select * from {{ ref('int_customers_consents_pivoted') }}
),

profiles as (
    select distinct customer_id from assignments
),

distinct_sources as (
    select distinct
        customer_id,
        source
    from source_records
),

sources_seen as (
    select
        customer_id,
        count(*) as source_count,
        {{ sorted_listagg('source', "', '") }} as sources_seen
    from distinct_sources
    group by customer_id
),

purchases as (
    select
        customer_id,
        sum(case when channel = 'online' then 1 else 0 end) as online_order_count,
        sum(case when channel = 'online' then amount else 0 end) as online_revenue,
        sum(case when channel = 'store' then 1 else 0 end) as store_order_count,
        sum(case when channel = 'store' then amount else 0 end) as store_revenue
    from transactions
    group by customer_id
),

attributes as (
    select
        {%- for attribute in attributes %}
            max(case when attribute = '{{ attribute }}' then attribute_value end) as {{ attribute }},
            max(case when attribute = '{{ attribute }}' then attribute_source end)
                as {{ attribute }}_source,
            max(case when attribute = '{{ attribute }}' then attribute_updated_at end)
                as {{ attribute }}_updated_at,
        {%- endfor %}
        customer_id
    from survived
    group by customer_id
),

final as (
    select
        profiles.customer_id,
        {%- for attribute in attributes %}
            attributes.{{ attribute }},
            attributes.{{ attribute }}_source,
            attributes.{{ attribute }}_updated_at,
        {%- endfor %}
        coalesce(sources_seen.source_count, 0) as source_count,
        sources_seen.sources_seen,
        coalesce(purchases.online_order_count, 0) as online_order_count,
        coalesce(purchases.store_order_count, 0) as store_order_count,
        coalesce(purchases.online_revenue, 0) as online_revenue,
        coalesce(purchases.store_revenue, 0) as store_revenue,
        {%- for purpose in consent_purpose_names() %}
            consents.consent_{{ purpose }},
        {%- endfor %}
        consents.consents_updated_at
    from profiles
    left join attributes on profiles.customer_id = attributes.customer_id
    left join sources_seen on profiles.customer_id = sources_seen.customer_id
    left join purchases on profiles.customer_id = purchases.customer_id
    left join consents on profiles.customer_id = consents.customer_id
)

select * from final
