-- grain: one row per suppressed identifier hash (identifier_hash)
-- Identifiers of people who asked to be erased or suppressed (privacy.suppression_list, written
-- by orchestration/privacy.py). Hashes only: compare with privacy_hash(value).
with suppression_list as (
    {{ suppression_list_relation() }}
),

ranked as (
    -- erase outranks suppress when an identifier is on the list for both
    select
        identifier_hash,
        suppression_action,
        case when suppression_action = 'erase' then 0 else 1 end as action_rank
    from suppression_list
    where identifier_hash is not null
),

deduplicated as (
    {{ deduplicate('ranked', 'identifier_hash', 'action_rank') }}
),

final as (
    select
        identifier_hash,
        suppression_action
    from deduplicated
)

select * from final
