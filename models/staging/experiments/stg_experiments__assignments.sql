-- grain: one row per experiment_id and customer_id ever assigned
-- The engine creates experiments.assignments on the first run of a sync with an experiment;
-- until then this model is empty (same columns), so a project without experiments still builds.
with assignments as (
    {{ optional_source('experiments', 'assignments', {
        'experiment_id': dbt.type_string(),
        'customer_id': dbt.type_string(),
        'variant': dbt.type_string(),
        'window_days': dbt.type_int(),
        'assigned_at': dbt.type_timestamp(),
        'window_ends_at': dbt.type_timestamp(),
        'inherited_from': dbt.type_string(),
    }) }}
),

final as (
    select
        cast(experiment_id as {{ dbt.type_string() }}) as experiment_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(variant as {{ dbt.type_string() }}) as variant,
        cast(window_days as {{ dbt.type_int() }}) as window_days,
        cast(assigned_at as {{ dbt.type_timestamp() }}) as assigned_at,
        cast(window_ends_at as {{ dbt.type_timestamp() }}) as window_ends_at,
        cast(inherited_from as {{ dbt.type_string() }}) as inherited_from
    from assignments
    where experiment_id is not null
)

select * from final
