{#- A stable 60-bit integer from a string: the first 15 hex digits of its md5, identical on every
    engine (so integer ids computed on DuckDB, PostgreSQL and Spark agree). -#}

{% macro hash_bigint(expr) -%}
    {{ return(adapter.dispatch('hash_bigint', 'cdp')(expr)) }}
{%- endmacro %}

{% macro default__hash_bigint(expr) -%}
    cast(('0x' || substr(md5({{ expr }}), 1, 15)) as bigint)
{%- endmacro %}

{% macro postgres__hash_bigint(expr) -%}
    ('x0' || substr(md5({{ expr }}), 1, 15))::bit(64)::bigint
{%- endmacro %}

{% macro spark__hash_bigint(expr) -%}
    cast(conv(substr(md5({{ expr }}), 1, 15), 16, 10) as bigint)
{%- endmacro %}
