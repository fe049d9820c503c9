-- grain: one row per customer_id and consent purpose (seed consent_purposes)
-- Published as customer_consents; customers reads its pivot (int_customers_consents_pivoted).
-- Precedence (docs/privacy.md):
--   1. per identifier of the person (email, phone, device, ...) the most recent decision wins;
--      at the same instant a denial beats a grant;
--   2. across the person's identifiers a denial wins: when the latest decision on any identifier
--      is a denial the person is denied; otherwise granted;
--   3. a person with no decision for a purpose gets the purpose's default (seed consent_purposes).
-- Unsubscribes and spam reports are email_marketing denials of their address.
{%- set denial_first = "case when consent_status = 'denied' then 0 else 1 end" %}
{%- set per_identifier = 'customer_id, purpose, identifier_type, identifier_value' %}
{%- set latest_first = 'decided_at desc, ' ~ denial_first ~ ', decision_id' %}
{%- set denial_then_latest = denial_first ~ ', decided_at desc, decision_id' %}

with assignments as (
    select * from {{ ref('int_identity_customer_ids_assigned') }}
    where is_active
),

customers as (
    -- every profile (the customer ids of customer_identities)
    select distinct customer_id from assignments
),

purposes as (
    select * from {{ ref('consent_purposes') }}
),

decisions as (
    select * from {{ ref('int_consent_decisions_collected') }}
),

latest_per_identifier_numbered as (
    {{ deduplicate('decisions', per_identifier, latest_first) }}
),

latest_per_identifier as (
    select
        decision_id,
        customer_id,
        identifier_type,
        purpose,
        consent_status,
        decided_at,
        decision_source
    from latest_per_identifier_numbered
),

person_decision as (
    -- the denial (if any) first, then the most recent grant
    {{ deduplicate('latest_per_identifier', 'customer_id, purpose', denial_then_latest) }}
),

identifier_counts as (
    select
        customer_id,
        purpose,
        count(*) as identifiers_decided,
        sum(case when consent_status = 'denied' then 1 else 0 end) as identifiers_denied
    from latest_per_identifier
    group by customer_id, purpose
),

final as (
    select
        {{ dbt.concat(['customers.customer_id', "':'", 'purposes.purpose']) }}
            as customer_consent_id,
        customers.customer_id,
        purposes.purpose,
        coalesce(person_decision.consent_status, purposes.default_status) as consent_status,
        person_decision.decided_at,
        coalesce(person_decision.decision_source, 'default') as decision_source,
        person_decision.identifier_type as decided_by_identifier_type,
        case when person_decision.customer_id is null then 'default' else 'decision' end
            as consent_basis,
        cast(coalesce(identifier_counts.identifiers_decided, 0) as {{ dbt.type_int() }})
            as identifiers_decided,
        cast(coalesce(identifier_counts.identifiers_denied, 0) as {{ dbt.type_int() }})
            as identifiers_denied,
        coalesce(person_decision.consent_status, purposes.default_status) = 'granted'
            as is_granted
    from customers
    cross join purposes
    left join person_decision
        on
            customers.customer_id = person_decision.customer_id
            and purposes.purpose = person_decision.purpose
    left join identifier_counts
        on
            customers.customer_id = identifier_counts.customer_id
            and purposes.purpose = identifier_counts.purpose
)

select * from final
