-- grain: one row per kpi_date and kpi_name (a daily snapshot; definitions in docs/features.md, "KPIs")
{{
    config(
        materialized='incremental',
        unique_key='kpi_date',
        incremental_strategy=daily_snapshot_strategy(),
        partition_by=daily_snapshot_partition_by('kpi_date'),
        on_schema_change='fail',
    )
}}
{%- set as_of_at = as_of_timestamp() %}
{%- set churn_days = var('segments')['churn_horizon_days'] %}
{#- landing source name: (staging model, its record id) -#}
{%- set linkable_sources = {
    'shop_orders': ('stg_shop__orders', 'order_id'),
    'pos_transactions': ('stg_pos__transactions', 'transaction_id'),
    'crm_contacts': ('stg_crm__contacts', 'contact_id'),
    'loyalty_members': ('stg_loyalty__members', 'loyalty_id'),
    'segment_identifies': ('stg_segment__identifies', 'identify_id'),
    'segment_tracks': ('stg_segment__tracks', 'track_id'),
    'segment_pages': ('stg_segment__pages', 'page_view_id'),
    'email_events': ('stg_email__events', 'email_event_id'),
    'support_tickets': ('stg_support__tickets', 'ticket_id'),
    'consents': ('stg_consent__consents', 'consent_id'),
} %}

with customers as (
    select * from {{ ref('customers') }}
),

source_records as (
    select * from {{ ref('int_source_records_assigned') }}
),

features as (
    select * from {{ ref('customer_features') }}
),

email as (
    select * from {{ ref('int_customers_email_summarised') }}
),

transactions as (
    select * from {{ ref('int_transactions_attributed') }}
),

predictions as (
    select * from {{ ref('int_customer_predictions') }}
),

consents as (
    select * from {{ ref('customer_consents') }}
),

campaigns as (
    select * from {{ ref('campaign_performance') }}
),

records_by_source as (
    -- a staged record is integrated when identity resolution linked it to a customer
    {%- for source_name, (model, record_id) in linkable_sources.items() %}
        select
            count(*) as records,
            count(distinct case
                when source_records.customer_id is not null then staged.{{ record_id }}
            end) as linked_records
        from {{ ref(model) }} as staged
        left join source_records
            on
                source_records.source = '{{ source_name }}'
                and staged.{{ record_id }} = source_records.source_record_id
        {{ 'union all' if not loop.last }}
    {%- endfor %}
),

data_integration as (
    select
        'data_integration_rate' as kpi_name,
        sum(linked_records) as numerator,
        sum(records) as denominator
    from records_by_source
),

profiles as (
    select
        'identified_profile_share' as kpi_name,
        sum(case when primary_email is not null or primary_phone is not null then 1 else 0 end) as numerator,
        count(*) as denominator
    from customers
    union all
    select
        'profile_completeness' as kpi_name,
        sum(
            (case when first_name is not null then 1 else 0 end)
            + (case when last_name is not null then 1 else 0 end)
            + (case when primary_email is not null then 1 else 0 end)
            + (case when primary_phone is not null then 1 else 0 end)
            + (case when city is not null then 1 else 0 end)
            + (case when country_code is not null then 1 else 0 end)
        ) as numerator,
        6 * count(*) as denominator
    from customers
    union all
    select
        'first_party_data_growth_30d' as kpi_name,
        sum(
            case when first_seen_at >= {{ dbt.dateadd('day', -30, as_of_at) }} then 1 else 0 end
        ) as numerator,
        sum(
            case when first_seen_at < {{ dbt.dateadd('day', -30, as_of_at) }} then 1 else 0 end
        ) as denominator
    from customers
    where first_seen_at < {{ as_of_at }}
    union all
    select
        'identified_profile_growth_30d' as kpi_name,
        sum(
            case when first_seen_at >= {{ dbt.dateadd('day', -30, as_of_at) }} then 1 else 0 end
        ) as numerator,
        sum(
            case when first_seen_at < {{ dbt.dateadd('day', -30, as_of_at) }} then 1 else 0 end
        ) as denominator
    from customers
    where
        first_seen_at < {{ as_of_at }}
        and (primary_email is not null or primary_phone is not null)
),

consented_since as (
    -- a profile is consented from its first granted decision (a purpose's default is no consent)
    select
        customer_id,
        min(decided_at) as consented_at
    from consents
    where
        consent_status = 'granted'
        and consent_basis = 'decision'
        and decided_at < {{ as_of_at }}
    group by customer_id
),

consent_growth as (
    select
        'consented_profile_growth_30d' as kpi_name,
        sum(
            case when consented_at >= {{ dbt.dateadd('day', -30, as_of_at) }} then 1 else 0 end
        ) as numerator,
        sum(
            case when consented_at < {{ dbt.dateadd('day', -30, as_of_at) }} then 1 else 0 end
        ) as denominator
    from consented_since
),

purchase_channels as (
    -- per customer: bought online (the web shop) / in a store in the 30 days before the as-of
    select
        customer_id,
        max(case when channel = 'online' then 1 else 0 end) as bought_online_30d,
        max(case when channel = 'store' then 1 else 0 end) as bought_in_store_30d
    from transactions
    where transacted_at >= {{ dbt.dateadd('day', -30, as_of_at) }}
    group by customer_id
),

web_visitors as (
    select
        features.customer_id,
        coalesce(purchase_channels.bought_online_30d, 0) as bought_online_30d,
        coalesce(purchase_channels.bought_in_store_30d, 0) as bought_in_store_30d
    from features
    left join purchase_channels
        on features.customer_id = purchase_channels.customer_id
    where features.web_sessions_30d > 0
),

behaviour as (
    -- web conversions are web-shop orders; a visitor's store purchase is its own KPI
    select
        'web_conversion_rate_30d' as kpi_name,
        sum(bought_online_30d) as numerator,
        count(*) as denominator
    from web_visitors
    union all
    select
        'web_visitor_store_purchase_rate_30d' as kpi_name,
        sum(bought_in_store_30d) as numerator,
        count(*) as denominator
    from web_visitors
    union all
    select
        'email_open_rate_90d' as kpi_name,
        sum(emails_opened_90d) as numerator,
        sum(emails_delivered_90d) as denominator
    from email
    union all
    select
        'email_click_rate_90d' as kpi_name,
        sum(emails_clicked_90d) as numerator,
        sum(emails_delivered_90d) as denominator
    from email
    union all
    select
        -- unique clickers / unique openers of the campaigns first delivered in 90 days
        'email_click_to_open_rate_90d' as kpi_name,
        sum(clicked) as numerator,
        sum(opened) as denominator
    from campaigns
    where
        channel = 'email'
        and first_activity_at >= {{ dbt.dateadd('day', -90, as_of_at) }}
    union all
    select
        'ad_click_through_rate' as kpi_name,
        sum(clicked) as numerator,
        sum(impressions) as denominator
    from campaigns
    where impressions is not null
),

purchase_periods as (
    -- active: bought in the year before the churn window; retained: bought in the churn window
    select
        customer_id,
        max(
            case
                when
                    transacted_at < {{ dbt.dateadd('day', -churn_days, as_of_at) }}
                    and transacted_at >= {{ dbt.dateadd('day', -(churn_days + 365), as_of_at) }}
                    then 1
                else 0
            end
        ) as was_active,
        max(
            case when transacted_at >= {{ dbt.dateadd('day', -churn_days, as_of_at) }} then 1 else 0 end
        ) as is_retained
    from transactions
    group by customer_id
),

churn as (
    select
        'churn_rate_{{ churn_days }}d' as kpi_name,
        sum(case when is_retained = 0 then 1 else 0 end) as numerator,
        count(*) as denominator
    from purchase_periods
    where was_active = 1
),

value as (
    select
        'avg_predicted_clv_365d' as kpi_name,
        sum(predicted_clv_365d) as numerator,
        count(predicted_clv_365d) as denominator
    from predictions
    union all
    select
        'profiles' as kpi_name,
        count(*) as numerator,
        1 as denominator
    from customers
),

kpis as (
    select * from data_integration
    union all
    select * from profiles
    union all
    select * from consent_growth
    union all
    select * from behaviour
    union all
    select * from churn
    union all
    select * from value
),

final as (
    select
        {{ snapshot_date() }} as kpi_date,
        cast(kpi_name as {{ type_varchar() }}) as kpi_name,
        cast(
            case when denominator > 0 then 1.0 * numerator / denominator end as decimal(18, 4)
        ) as kpi_value,
        cast(numerator as decimal(18, 2)) as numerator,
        cast(denominator as decimal(18, 2)) as denominator,
        cast({{ as_of_at }} as timestamp) as computed_as_of
    from kpis
)

select * from final
