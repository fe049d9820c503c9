-- grain: one row per customer_id and consent purpose (seed consent_purposes)
-- The precedence rules live in int_customers_consents_decided (docs/privacy.md).
with decided as (
    select * from {{ ref('int_customers_consents_decided') }}
),

final as (
    select
        customer_consent_id,
        customer_id,
        purpose,
        consent_status,
        decided_at,
        decision_source,
        decided_by_identifier_type,
        consent_basis,
        identifiers_decided,
        identifiers_denied,
        is_granted
    from decided
)

select * from final
