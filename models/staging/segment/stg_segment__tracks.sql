-- grain: one row per track call (track_id)
with source as (
    select * from {{ source('segment', 'segment_tracks') }}
),

deduplicated as (
    {{ deduplicate('source', 'id', '_loaded_at desc, _source_file, _source_line') }}
),

final as (
    select
        cast(id as {{ dbt.type_string() }}) as track_id,
        {{ normalize_identifier('anonymous_id') }} as anonymous_id,
        {{ normalize_identifier('user_id') }} as user_id,
        trim(event) as event_name,
        {{ to_utc(adapter.quote('timestamp')) }} as occurred_at,
        {{ normalize_identifier('product_id') }} as product_id,
        {{ normalize_identifier('order_id') }} as order_id,
        cast(revenue as decimal(18, 2)) as revenue,
        {{ to_utc('_loaded_at') }} as loaded_at
    from deduplicated
    where
        id is not null
        and {{ as_of_filter(to_utc(adapter.quote('timestamp'))) }}
)

select * from final
