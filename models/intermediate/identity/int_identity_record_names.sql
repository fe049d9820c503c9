-- grain: one row per linking source record that carries a person's name (source, source_record_id)
-- The name a record gives (first and last name attributes of var identity.sources, lowercased,
-- and the last name alone):
-- noqa: disable=RF04
-- (`source` is the column name of every identity model)
-- evidence for junk detection (one email, many names) and for the shared-identifier rule (two
-- profiles with different names are different people).
-- A table, read by junk detection and the exclusions, taken from the names
-- int_identity_identifiers_observed reads in its pass over the staging views (a view over the
-- staging views ran their normalisation again for each reader). An erasure deletes the rows of
-- the records it erases from raw (orchestration/privacy/steps.py scrub_derived: tables keyed by
-- source and source_record_id).
{{ config(materialized='table') }}

with observed as (
    select * from {{ ref('int_identity_identifiers_observed') }}
),

final as (
    select distinct
        source,
        source_record_id,
        person_name,
        last_name
    from observed
    where
        is_linking
        and person_name is not null
)

select * from final
