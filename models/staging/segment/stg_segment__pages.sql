-- grain: one row per page view (page_view_id)
with source as (
    select * from {{ source('segment', 'segment_pages') }}
),

deduplicated as (
    {{ deduplicate('source', 'id', '_loaded_at desc, _source_file, _source_line') }}
),

final as (
    select
        cast(id as {{ dbt.type_string() }}) as page_view_id,
        {{ normalize_identifier('anonymous_id') }} as anonymous_id,
        {{ normalize_identifier('user_id') }} as user_id,
        {{ to_utc(adapter.quote('timestamp')) }} as occurred_at,
        url,
        path,
        referrer,
        title,
        {{ to_utc('_loaded_at') }} as loaded_at
    from deduplicated
    where
        id is not null
        and {{ as_of_filter(to_utc(adapter.quote('timestamp'))) }}
)

select * from final
