-- grain: one row per customer_id: the golden profile
-- Attributes survive by the rules of var `survivorship`, each with its provenance
-- (<attribute>_source, <attribute>_updated_at). Purchases: shop orders not in
-- var features.excluded_order_statuses (online) plus store transactions (store).
-- Incremental (timeline_materialization): a run rebuilds the profiles whose identifiers moved
-- (int_identity_customers_changed) or whose events customer_events wrote since this
-- table's build (timeline_written_at); retired and erased ids are deleted by the post-hook.
-- depends_on: {{ ref('int_identity_customers_changed') }}
-- depends_on: {{ ref('int_identity_customer_ids_assigned') }} (post-hook delete_inactive_customers)
{{
    config(
        materialized=timeline_materialization(),
        unique_key='customer_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        post_hook=["{{ delete_inactive_customers() }}"],
    )
}}
{%- set attributes = ['first_name', 'last_name', 'primary_email', 'primary_phone', 'city',
                      'country_code', 'loyalty_tier'] %}
{%- set types = ['user_id', 'anonymous_id', 'email', 'phone', 'shop_customer_id', 'loyalty_id',
                 'crm_contact_id'] %}
{%- set excluded_statuses = var('features')['excluded_order_statuses'] %}

with identities as (
    select * from {{ ref('customer_identities') }}
),

source_records as (
    select * from {{ ref('customer_source_records') }}
),

survived as (
    select * from {{ ref('int_profiles_attributes_survived') }}
),

shop_orders as (
    select * from {{ ref('stg_shop__orders') }}
),

pos_transactions as (
    select * from {{ ref('stg_pos__transactions') }}
),

consents as (
    select * from {{ ref('int_customers_consents_pivoted') }}
),

timeline as (
    select * from {{ ref('customer_events') }}
),

{% if is_incremental() %}
    changed_customers as (
        select * from {{ ref('int_identity_customers_changed') }}
    ),

    touched as (
        -- profiles whose identifiers moved, under the old and the new id
        select customer_id from changed_customers
        union
        {% if is_incremental_with(['timeline_written_at']) %}
            -- profiles with events written since this table was built
            select timeline.customer_id from timeline
            where
                timeline.customer_id is not null
                and timeline.written_at > (
                    select max(built.timeline_written_at) from {{ this }} as built
                )
        {% else %}
            -- the table predates its watermark (built by an older version): every profile once
            select identities.customer_id from identities
        {% endif %}
    ),
{% endif %}

watermark as (
    select max(written_at) as timeline_written_at from timeline
),

identity_summary as (
    select
        customer_id,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at,
        count(*) as identifier_count,
    {%- for identifier_type in types %}
        sum(case when identifier_type = '{{ identifier_type }}' then 1 else 0 end)
            as {{ identifier_type }}_count{{ ',' if not loop.last }}
    
    {%- endfor %}
    from identities
    where {{ touched_customers_filter('customer_id') }}
    group by customer_id
),

distinct_sources as (
    select distinct
        customer_id,
        source
    from source_records
    where {{ touched_customers_filter('customer_id') }}
),

sources_seen as (
    select
        customer_id,
        count(*) as source_count,
        {{ sorted_listagg('source', "', '") }} as sources_seen
    from distinct_sources
    group by customer_id
),

online_orders as (
    select
        source_records.customer_id,
        count(*) as online_order_count,
        sum(coalesce(shop_orders.total_amount, 0)) as online_revenue
    from shop_orders
    inner join source_records
        on
            source_records.source = 'shop_orders'
            and shop_orders.order_id = source_records.source_record_id
    where
        {{ touched_customers_filter('source_records.customer_id') }}
        and coalesce(shop_orders.order_status, 'completed') not in (
            {%- for status in excluded_statuses %}                '{{ status }}'{{ ', ' if not loop.last }}                                {% endfor -%}
        )
    group by source_records.customer_id
),

store_orders as (
    select
        source_records.customer_id,
        count(*) as store_order_count,
        sum(coalesce(pos_transactions.total_amount, 0)) as store_revenue
    from pos_transactions
    inner join source_records
        on
            source_records.source = 'pos_transactions'
            and pos_transactions.transaction_id = source_records.source_record_id
    where {{ touched_customers_filter('source_records.customer_id') }}
    group by source_records.customer_id
),

attributes as (
    select
        customer_id,
    {%- for attribute in attributes %}
        max(case when attribute = '{{ attribute }}' then attribute_value end) as {{ attribute }},
        max(case when attribute = '{{ attribute }}' then attribute_source end)
            as {{ attribute }}_source,
        max(case when attribute = '{{ attribute }}' then attribute_updated_at end)
            as {{ attribute }}_updated_at{{ ',' if not loop.last }}
    
    {%- endfor %}
    from survived
    where {{ touched_customers_filter('customer_id') }}
    group by customer_id
),

final as (
    select
        identity_summary.customer_id,
        {%- for attribute in attributes %}
            attributes.{{ attribute }},
            attributes.{{ attribute }}_source,
            attributes.{{ attribute }}_updated_at,
        {%- endfor %}
        identity_summary.first_seen_at,
        identity_summary.last_seen_at,
        cast(identity_summary.identifier_count as {{ dbt.type_int() }}) as identifier_count,
        {%- for identifier_type in types %}
            cast(identity_summary.{{ identifier_type }}_count as {{ dbt.type_int() }})
                as {{ identifier_type }}_count,
        {%- endfor %}
        cast(coalesce(sources_seen.source_count, 0) as {{ dbt.type_int() }}) as source_count,
        sources_seen.sources_seen,
        cast(coalesce(online_orders.online_order_count, 0) as {{ dbt.type_int() }})
            as online_order_count,
        cast(coalesce(store_orders.store_order_count, 0) as {{ dbt.type_int() }})
            as store_order_count,
        cast(
            coalesce(online_orders.online_order_count, 0)
            + coalesce(store_orders.store_order_count, 0)
            as {{ dbt.type_int() }}
        ) as order_count,
        cast(coalesce(online_orders.online_revenue, 0) as decimal(18, 2)) as online_revenue,
        cast(coalesce(store_orders.store_revenue, 0) as decimal(18, 2)) as store_revenue,
        cast(
            coalesce(online_orders.online_revenue, 0) + coalesce(store_orders.store_revenue, 0)
            as decimal(18, 2)
        ) as revenue,
        {%- for purpose in consent_purpose_names() %}
            consents.consent_{{ purpose }},
        {%- endfor %}
        consents.consents_updated_at,
        watermark.timeline_written_at
    from identity_summary
    cross join watermark
    left join attributes on identity_summary.customer_id = attributes.customer_id
    left join sources_seen on identity_summary.customer_id = sources_seen.customer_id
    left join online_orders on identity_summary.customer_id = online_orders.customer_id
    left join store_orders on identity_summary.customer_id = store_orders.customer_id
    left join consents on identity_summary.customer_id = consents.customer_id
)

select * from final
