-- Profiles holding more identifiers of a type than its max_per_customer (var identity).
-- Limits are enforced on direct edges; a violation through a longer path is reported here.
{{ config(severity='warn') }}

with identities as (
    select * from {{ ref('customer_identities') }}
),

counts as (
    select
        customer_id,
        identifier_type,
        count(*) as identifiers
    from identities
    group by customer_id, identifier_type
)

select
    customer_id,
    identifier_type,
    identifiers
from counts
where identifiers > {{ identity_type_case('identifier_type', 'max_per_customer', '1000000000') }}
