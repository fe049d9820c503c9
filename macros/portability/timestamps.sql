{#- Timestamp helpers: raw timestamps arrive as timestamp with time zone; models use UTC timestamps. -#}

{% macro to_utc(expr) -%}
    {{ return(adapter.dispatch('to_utc', 'cdp')(expr)) }}
{%- endmacro %}

{% macro default__to_utc(expr) -%}
    cast(({{ expr }} at time zone 'UTC') as timestamp)
{%- endmacro %}

{% macro spark__to_utc(expr) -%}
    {#- Spark timestamps are instants rendered in the session time zone, which the profile sets to UTC. -#}
    cast({{ expr }} as timestamp)
{%- endmacro %}


{% macro as_of_timestamp() -%}
    {#- The end of the as-of day (exclusive bound), or the current time when no as-of date is set. -#}
    {%- set as_of = var('as_of', '') -%}
    {%- if as_of -%}
        cast('{{ modules.datetime.date.fromisoformat(as_of | string) + modules.datetime.timedelta(days=1) }} 00:00:00' as timestamp)
    {%- else -%}
        {{ current_utc_timestamp() }}
    {%- endif -%}
{%- endmacro %}


{% macro as_of_filter(expr) -%}
    {#- True for rows at or before the as-of date; rows with no timestamp are kept. -#}
    {%- if var('as_of', '') -%}
        ({{ expr }} is null or {{ expr }} < {{ as_of_timestamp() }})
    {%- else -%}
        (1 = 1)
    {%- endif -%}
{%- endmacro %}


{% macro current_utc_timestamp() -%}
    {{ return(adapter.dispatch('current_utc_timestamp', 'cdp')()) }}
{%- endmacro %}

{% macro default__current_utc_timestamp() -%}
    cast((current_timestamp at time zone 'UTC') as timestamp)
{%- endmacro %}

{% macro spark__current_utc_timestamp() -%}
    cast(current_timestamp() as timestamp)
{%- endmacro %}
