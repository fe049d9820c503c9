{#- A pre-hook of every model: session settings an engine needs for this project's bulk SQL.

    PostgreSQL: enable_nestloop = off. Staging models are views whose dedup (row_number() = 1)
    and normalisation filters make the planner estimate 1-2 rows, so it nested-loops two ~50k-row
    inputs with a join filter: int_consent_decisions_collected ran for over 5 minutes at 25k
    customers instead of under a second. Every join here is a bulk equi-join without indexes,
    where hash and merge joins are right; PostgreSQL still nested-loops where nothing else works.
    Other engines: nothing. -#}
{% macro session_tuning() -%}
    {{ return(adapter.dispatch('session_tuning', 'cdp')()) }}
{%- endmacro %}

{% macro default__session_tuning() -%}
{%- endmacro %}

{% macro postgres__session_tuning() -%}
    set enable_nestloop = off
{%- endmacro %}
