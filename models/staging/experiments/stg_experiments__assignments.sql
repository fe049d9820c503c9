-- grain: one row per experiment_id and customer_id ever assigned
-- The engine creates experiments.assignments on the first run of a sync with an experiment;
-- until then this model is empty (same columns), so a project without experiments still builds.
{%- set assignments = source('experiments', 'assignments') %}
{%- set found = adapter.get_relation(
    database=assignments.database,
    schema=assignments.schema,
    identifier=assignments.identifier,
) if execute else none %}

with
{%- if found %}
    assignments as (
        select * from {{ assignments }}
    ),
{%- else %}
    assignments as (
        select
            cast(null as {{ dbt.type_string() }}) as experiment_id,
            cast(null as {{ dbt.type_string() }}) as customer_id,
            cast(null as {{ dbt.type_string() }}) as variant,
            cast(null as {{ dbt.type_int() }}) as window_days,
            cast(null as {{ dbt.type_timestamp() }}) as assigned_at,
            cast(null as {{ dbt.type_string() }}) as inherited_from
    ),
{%- endif %}

final as (
    select
        cast(experiment_id as {{ dbt.type_string() }}) as experiment_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(variant as {{ dbt.type_string() }}) as variant,
        cast(window_days as {{ dbt.type_int() }}) as window_days,
        cast(assigned_at as {{ dbt.type_timestamp() }}) as assigned_at,
        cast(inherited_from as {{ dbt.type_string() }}) as inherited_from
    from assignments
    where experiment_id is not null
)

select * from final
