-- grain: one row per ad_performance_id (ad platform, campaign and report date)
-- The source is optional: before an ad export is loaded into raw.ad_performance this model has
-- zero rows with these columns (macro optional_source), so the ad rows of campaign_performance
-- are absent. A day reported twice fails the key test (load each export once).
with source as (
    {{ optional_source('ads', 'ad_performance', {
        'platform': dbt.type_string(),
        'campaign_id': dbt.type_string(),
        'report_date': 'date',
        'impressions': dbt.type_bigint(),
        'clicks': dbt.type_bigint(),
        'spend': 'decimal(18, 2)',
    }) }}
),

typed as (
    select
        {{ normalize_code('platform') }} as platform,
        {{ normalize_identifier('campaign_id') }} as campaign_id,
        cast(report_date as date) as report_date,
        cast(impressions as {{ dbt.type_bigint() }}) as impressions,
        cast(clicks as {{ dbt.type_bigint() }}) as clicks,
        cast(spend as decimal(18, 2)) as spend
    from source
),

final as (
    select
        {{ dbt.concat([
            "platform", "':'", "campaign_id", "':'",
            "cast(report_date as " ~ dbt.type_string() ~ ")",
        ]) }} as ad_performance_id,
        platform,
        campaign_id,
        report_date,
        impressions,
        clicks,
        spend
    from typed
    where
        platform is not null
        and campaign_id is not null
        and report_date is not null
        and {{ as_of_filter('cast(report_date as timestamp)') }}
)

select * from final
