{#- Salted SHA-256 (hex) of a normalised identifier value, as stored in privacy.suppression_list
    and in the request records: `sha256(salt || value)`. The salt is env var CDP_PRIVACY_SALT;
    orchestration.privacy.identifier_hash computes the same hash in Python. The type is left out
    on purpose, so any column can be compared without knowing which identifier it holds. -#}
{% macro privacy_hash(identifier_value) -%}
    {%- set salted -%}
        {{ dbt.concat(["'" ~ env_var('CDP_PRIVACY_SALT', 'open-cdp-privacy') ~ "'",
                       identifier_value]) }}
    {%- endset -%}
    {{ return(sha256_hex(salted)) }}
{%- endmacro %}

{% macro sha256_hex(expression) -%}
    {{ return(adapter.dispatch('sha256_hex', 'cdp')(expression)) }}
{%- endmacro %}

{% macro default__sha256_hex(expression) -%}
    sha256({{ expression }})
{%- endmacro %}

{% macro postgres__sha256_hex(expression) -%}
    encode(sha256(convert_to({{ expression }}, 'UTF8')), 'hex')
{%- endmacro %}

{% macro spark__sha256_hex(expression) -%}
    sha2({{ expression }}, 256)
{%- endmacro %}
