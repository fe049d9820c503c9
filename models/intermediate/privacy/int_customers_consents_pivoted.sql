-- grain: one row per customer_id: the consent columns for `customers`
-- consent_<purpose> is 'granted' or 'denied' as in int_customers_consents_decided (the purpose's
-- default when the person never decided); consents_updated_at is the latest decision of any purpose.
{%- set purposes = consent_purpose_names() %}

with customer_consents as (
    select * from {{ ref('int_customers_consents_decided') }}
),

final as (
    select
        customer_id,
        {%- for purpose in purposes %}
            max(case when purpose = '{{ purpose }}' then consent_status end)
                as consent_{{ purpose }},
        {%- endfor %}
        max(decided_at) as consents_updated_at
    from customer_consents
    group by customer_id
)

select * from final
