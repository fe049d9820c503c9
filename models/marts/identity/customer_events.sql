-- grain: one row per event of any source (event_id = '<source>:<source_record_id>')
-- The unified timeline; customer_id is NULL for events no profile claims (e.g. only a hub
-- identifier such as a store kiosk device).
-- noqa: disable=RF04
-- (`source` and `attribute` are contract column names, kept as the issue names them)
with source_records as (
    select * from {{ ref('customer_source_records') }}
),

identifies as (
    select * from {{ ref('stg_segment__identifies') }}
),

tracks as (
    select * from {{ ref('stg_segment__tracks') }}
),

pages as (
    select * from {{ ref('stg_segment__pages') }}
),

shop_orders as (
    select * from {{ ref('stg_shop__orders') }}
),

pos_transactions as (
    select * from {{ ref('stg_pos__transactions') }}
),

email_events as (
    select * from {{ ref('stg_email__events') }}
),

support_tickets as (
    select * from {{ ref('stg_support__tickets') }}
),

crm_contacts as (
    select * from {{ ref('stg_crm__contacts') }}
),

loyalty_members as (
    select * from {{ ref('stg_loyalty__members') }}
),

consents as (
    select * from {{ ref('stg_consent__consents') }}
),

privacy_requests as (
    select * from {{ ref('stg_privacy__requests') }}
),

events as (
    select
        'segment_identifies' as source,
        identify_id as source_record_id,
        'identify' as event_type,
        'web' as channel,
        occurred_at,
        cast(null as decimal(18, 2)) as revenue
    from identifies
    union all
    select
        'segment_tracks' as source,
        track_id as source_record_id,
        lower(event_name) as event_type,
        'web' as channel,
        occurred_at,
        cast(revenue as decimal(18, 2)) as revenue
    from tracks
    union all
    select
        'segment_pages' as source,
        page_view_id as source_record_id,
        'page_view' as event_type,
        'web' as channel,
        occurred_at,
        cast(null as decimal(18, 2)) as revenue
    from pages
    union all
    select
        'shop_orders' as source,
        order_id as source_record_id,
        {{ dbt.concat(["'order_'", "coalesce(order_status, 'placed')"]) }} as event_type,
        'online' as channel,
        ordered_at as occurred_at,
        cast(total_amount as decimal(18, 2)) as revenue
    from shop_orders
    union all
    select
        'pos_transactions' as source,
        transaction_id as source_record_id,
        'store_purchase' as event_type,
        'store' as channel,
        transacted_at as occurred_at,
        cast(total_amount as decimal(18, 2)) as revenue
    from pos_transactions
    union all
    select
        'email_events' as source,
        email_event_id as source_record_id,
        {{ dbt.concat(["'email_'", 'event_type']) }} as event_type,
        'email' as channel,
        occurred_at,
        cast(null as decimal(18, 2)) as revenue
    from email_events
    union all
    select
        'support_tickets' as source,
        ticket_id as source_record_id,
        'support_ticket' as event_type,
        'support' as channel,
        created_at as occurred_at,
        cast(null as decimal(18, 2)) as revenue
    from support_tickets
    union all
    select
        'crm_contacts' as source,
        contact_id as source_record_id,
        'crm_contact_created' as event_type,
        'crm' as channel,
        created_at as occurred_at,
        cast(null as decimal(18, 2)) as revenue
    from crm_contacts
    union all
    select
        'loyalty_members' as source,
        loyalty_id as source_record_id,
        'loyalty_joined' as event_type,
        'loyalty' as channel,
        joined_at as occurred_at,
        cast(null as decimal(18, 2)) as revenue
    from loyalty_members
    union all
    select
        'consents' as source,
        consent_id as source_record_id,
        {{ dbt.concat(["'consent_'", 'consent_status']) }} as event_type,
        'consent' as channel,
        occurred_at,
        cast(null as decimal(18, 2)) as revenue
    from consents
    union all
    select
        'privacy_requests' as source,
        request_id as source_record_id,
        {{ dbt.concat(["'privacy_'", 'request_type']) }} as event_type,
        'privacy' as channel,
        received_at as occurred_at,
        cast(null as decimal(18, 2)) as revenue
    from privacy_requests
),

final as (
    select
        {{ dbt.concat(['events.source', "':'", 'events.source_record_id']) }} as event_id,
        source_records.customer_id,
        events.source,
        events.source_record_id,
        events.event_type,
        events.channel,
        events.occurred_at,
        events.revenue
    from events
    left join source_records
        on
            events.source = source_records.source
            and events.source_record_id = source_records.source_record_id
)

select * from final
