-- grain: one row per event of any source (event_id = '<source>:<source_record_id>')
-- The unified timeline; customer_id is NULL for events no profile claims (e.g. only a hub
-- identifier such as a store kiosk device).
-- Incremental (timeline_materialization): a run rewrites only the events it touches: records
-- not in the table yet, records loaded again since the last run (a new version), and the events
-- of customers whose identifiers moved (int_identity_customers_changed).
-- Every other row is kept as it is; erasures delete their rows directly (orchestration.privacy).
{#- Declared inputs with events (inputs/*.yml) add their records: source = the input's name. #}
-- A table built before loaded_at existed is rewritten whole once (is_incremental_with).
-- depends_on: {{ ref('int_identity_customers_changed') }}
-- noqa: disable=RF04
-- (`source` and `attribute` are contract column names, kept as the issue names them)
{{
    config(
        materialized=timeline_materialization(),
        unique_key='event_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
    )
}}

with source_records as (
    select * from {{ ref('int_source_records_assigned') }}
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
{%- for entry in declared_inputs() if entry.get('events') %}

    {{ entry.source }} as (
        select * from {{ ref(entry.model) }}
    ),
{%- endfor %}

events as (
    select
        'segment_identifies' as source,
        identify_id as source_record_id,
        'identify' as event_type,
        'web' as channel,
        occurred_at,
        cast(null as decimal(18, 2)) as revenue,
        loaded_at
    from identifies
    union all
    select
        'segment_tracks' as source,
        track_id as source_record_id,
        lower(event_name) as event_type,
        'web' as channel,
        occurred_at,
        cast(revenue as decimal(18, 2)) as revenue,
        loaded_at
    from tracks
    union all
    select
        'segment_pages' as source,
        page_view_id as source_record_id,
        'page_view' as event_type,
        'web' as channel,
        occurred_at,
        cast(null as decimal(18, 2)) as revenue,
        loaded_at
    from pages
    union all
    select
        'shop_orders' as source,
        order_id as source_record_id,
        {{ dbt.concat(["'order_'", "coalesce(order_status, 'placed')"]) }} as event_type,
        'online' as channel,
        ordered_at as occurred_at,
        cast(total_amount as decimal(18, 2)) as revenue,
        loaded_at
    from shop_orders
    union all
    select
        'pos_transactions' as source,
        transaction_id as source_record_id,
        'store_purchase' as event_type,
        'store' as channel,
        transacted_at as occurred_at,
        cast(total_amount as decimal(18, 2)) as revenue,
        loaded_at
    from pos_transactions
    union all
    select
        'email_events' as source,
        email_event_id as source_record_id,
        {{ dbt.concat(["'email_'", 'event_type']) }} as event_type,
        'email' as channel,
        occurred_at,
        cast(null as decimal(18, 2)) as revenue,
        loaded_at
    from email_events
    union all
    select
        'support_tickets' as source,
        ticket_id as source_record_id,
        'support_ticket' as event_type,
        'support' as channel,
        created_at as occurred_at,
        cast(null as decimal(18, 2)) as revenue,
        loaded_at
    from support_tickets
    union all
    select
        'crm_contacts' as source,
        contact_id as source_record_id,
        'crm_contact_created' as event_type,
        'crm' as channel,
        created_at as occurred_at,
        cast(null as decimal(18, 2)) as revenue,
        loaded_at
    from crm_contacts
    union all
    select
        'loyalty_members' as source,
        loyalty_id as source_record_id,
        'loyalty_joined' as event_type,
        'loyalty' as channel,
        joined_at as occurred_at,
        cast(null as decimal(18, 2)) as revenue,
        loaded_at
    from loyalty_members
    union all
    select
        'consents' as source,
        consent_id as source_record_id,
        {{ dbt.concat(["'consent_'", 'consent_status']) }} as event_type,
        'consent' as channel,
        occurred_at,
        cast(null as decimal(18, 2)) as revenue,
        loaded_at
    from consents
    union all
    select
        'privacy_requests' as source,
        request_id as source_record_id,
        {{ dbt.concat(["'privacy_'", 'request_type']) }} as event_type,
        'privacy' as channel,
        received_at as occurred_at,
        cast(null as decimal(18, 2)) as revenue,
        loaded_at
    from privacy_requests
    {%- for entry in declared_inputs() if entry.get('events') %}
        {%- set events = entry.events %}
        union all
        select
            '{{ entry.source }}' as source,
            cast({{ entry.record_id }} as {{ dbt.type_string() }}) as source_record_id,
            cast({{ events.event_type }} as {{ dbt.type_string() }}) as event_type,
            cast({{ events.channel }} as {{ dbt.type_string() }}) as channel,
            cast({{ entry.seen_at }} as {{ dbt.type_timestamp() }}) as occurred_at,
            {%- if events.revenue %}
                cast({{ events.revenue }} as decimal(18, 2)) as revenue,
            {%- else %}
                cast(null as decimal(18, 2)) as revenue,
            {%- endif %}
            loaded_at
        from {{ entry.source }}
    {%- endfor %}
),

events_keyed as (
    select
        {{ dbt.concat(['events.source', "':'", 'events.source_record_id']) }} as event_id,
        events.*
    from events
),

{% if is_incremental_with(['loaded_at']) %}
    previous as (
        select
            event_id,
            customer_id
        from {{ this }}
    ),

    bounds as (
        select
            max(loaded_at) as max_loaded_at,
            max(occurred_at) as max_occurred_at
        from {{ this }}
    ),

    changed_customers as (
        -- customers whose identifiers moved this run, under their old and their new id
        select * from {{ ref('int_identity_customers_changed') }}
    ),

    rekeyed_records as (
        select source_records.customer_source_record_id as event_id
        from source_records
        where source_records.customer_id in (select changed_customers.customer_id from changed_customers)
    ),

    batch as (
        select events_keyed.*
        from events_keyed
        cross join bounds
        left join previous on events_keyed.event_id = previous.event_id
        where
            previous.event_id is null
            or events_keyed.loaded_at > bounds.max_loaded_at
            or events_keyed.occurred_at > bounds.max_occurred_at
            or previous.customer_id in (select changed_customers.customer_id from changed_customers)
            or events_keyed.event_id in (select rekeyed_records.event_id from rekeyed_records)
    ),
{% else %}
    batch as (
        select * from events_keyed
    ),
{% endif %}

final as (
    select
        batch.event_id,
        source_records.customer_id,
        batch.source,
        batch.source_record_id,
        batch.event_type,
        batch.channel,
        batch.occurred_at,
        batch.revenue,
        batch.loaded_at,
        {{ current_utc_timestamp() }} as written_at
    from batch
    left join source_records
        on batch.event_id = source_records.customer_source_record_id
)

select * from final
