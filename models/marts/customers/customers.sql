-- grain: one row per customer_id: the golden profile
-- Attributes survive by the rules of var `survivorship`, each with its provenance
-- (<attribute>_source, <attribute>_updated_at). Purchases follow the purchase rule of
-- int_transactions_identified. Everything beyond the identifiers comes assembled from
-- int_profiles_assembled.
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

with identities as (
    select * from {{ ref('customer_identities') }}
),

profile_parts as (
    select * from {{ ref('int_profiles_assembled') }}
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
        {%- for identifier_type in types %}
            sum(case when identifier_type = '{{ identifier_type }}' then 1 else 0 end)
                as {{ identifier_type }}_count,
        {%- endfor %}
        count(*) as identifier_count
    from identities
    where {{ touched_customers_filter('customer_id') }}
    group by customer_id
),

final as (
    select
        identity_summary.customer_id,
        {%- for attribute in attributes %}
            profile_parts.{{ attribute }},
            profile_parts.{{ attribute }}_source,
            profile_parts.{{ attribute }}_updated_at,
        {%- endfor %}
        identity_summary.first_seen_at,
        identity_summary.last_seen_at,
        cast(identity_summary.identifier_count as {{ dbt.type_int() }}) as identifier_count,
        {%- for identifier_type in types %}
            cast(identity_summary.{{ identifier_type }}_count as {{ dbt.type_int() }})
                as {{ identifier_type }}_count,
        {%- endfor %}
        cast(coalesce(profile_parts.source_count, 0) as {{ dbt.type_int() }}) as source_count,
        profile_parts.sources_seen,
        cast(coalesce(profile_parts.online_order_count, 0) as {{ dbt.type_int() }})
            as online_order_count,
        cast(coalesce(profile_parts.store_order_count, 0) as {{ dbt.type_int() }})
            as store_order_count,
        cast(
            coalesce(profile_parts.online_order_count, 0)
            + coalesce(profile_parts.store_order_count, 0)
            as {{ dbt.type_int() }}
        ) as order_count,
        cast(coalesce(profile_parts.online_revenue, 0) as decimal(18, 2)) as online_revenue,
        cast(coalesce(profile_parts.store_revenue, 0) as decimal(18, 2)) as store_revenue,
        cast(
            coalesce(profile_parts.online_revenue, 0) + coalesce(profile_parts.store_revenue, 0)
            as decimal(18, 2)
        ) as revenue,
        {%- for purpose in consent_purpose_names() %}
            profile_parts.consent_{{ purpose }},
        {%- endfor %}
        profile_parts.consents_updated_at,
        watermark.timeline_written_at
    from identity_summary
    cross join watermark
    left join profile_parts on identity_summary.customer_id = profile_parts.customer_id
)

select * from final
