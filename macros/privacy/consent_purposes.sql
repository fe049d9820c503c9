{#- The consent purposes, as in seed consent_purposes (one column per purpose needs the list at
    compile time). Add a purpose to both. -#}
{% macro consent_purpose_names() -%}
    {{ return(['email_marketing', 'advertising', 'analytics', 'personalisation']) }}
{%- endmacro %}

{#- Email events that withdraw email_marketing consent for the address they concern. -#}
{% macro consent_withdrawing_email_events() -%}
    {{ return(['unsubscribe', 'spam_report']) }}
{%- endmacro %}
