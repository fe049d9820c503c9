{#- Access control on engines with roles (PostgreSQL): a post-hook of every mart.
    Schema USAGE is granted once at the end of the run (pii_access_schema_grants, on-run-end):
    concurrent GRANTs on one schema from several dbt threads fail with "tuple concurrently
    updated", table grants touch only their own table.
    var `pii_access`: pii_roles may read every column; reader_roles may read only the columns
    not marked `meta: {pii: true}` (column privileges), so `select *` on a table with PII fails
    for them while `select customer_id, order_count` works. With no roles configured nothing is
    granted or revoked (the default). DuckDB and Spark have no roles here: no-op. -#}
{% macro pii_access_grants() -%}
    {{ return(adapter.dispatch('pii_access_grants', 'cdp')()) }}
{%- endmacro %}

{% macro default__pii_access_grants() -%}
{%- endmacro %}

{% macro postgres__pii_access_grants() -%}
    {%- set access = var('pii_access', {}) -%}
    {%- set pii_roles = access.get('pii_roles') or [] -%}
    {%- set reader_roles = access.get('reader_roles') or [] -%}
    {%- if execute and (pii_roles or reader_roles) -%}
        {%- set pii_columns = [] -%}
        {%- set other_columns = [] -%}
        {%- for name, column in model.columns.items() -%}
            {%- set meta = column.get('meta', {}) or {} -%}
            {%- set config_meta = (column.get('config', {}) or {}).get('meta', {}) or {} -%}
            {%- if meta.get('pii') or config_meta.get('pii') -%}
                {%- do pii_columns.append(name) -%}
            {%- else -%}
                {%- do other_columns.append(name) -%}
            {%- endif -%}
        {%- endfor -%}
        revoke all on {{ this }} from public;
        {%- for role in pii_roles %}
        grant select on {{ this }} to {{ adapter.quote(role) }};
        {%- endfor %}
        {%- for role in reader_roles %}
            {%- if pii_columns %}
        revoke select on {{ this }} from {{ adapter.quote(role) }};
                {%- if other_columns %}
        grant select ({% for c in other_columns %}{{ adapter.quote(c) }}{{ ', ' if not loop.last }}{% endfor %})
            on {{ this }} to {{ adapter.quote(role) }};
                {%- endif %}
            {%- else %}
        grant select on {{ this }} to {{ adapter.quote(role) }};
            {%- endif %}
        {%- endfor %}
    {%- endif -%}
{%- endmacro %}

{#- on-run-end: USAGE on the schemas holding marts, for every configured role. -#}
{% macro pii_access_schema_grants() -%}
    {{ return(adapter.dispatch('pii_access_schema_grants', 'cdp')()) }}
{%- endmacro %}

{% macro default__pii_access_schema_grants() -%}
{%- endmacro %}

{% macro postgres__pii_access_schema_grants() -%}
    {%- set access = var('pii_access', {}) -%}
    {%- set roles = (access.get('pii_roles') or []) + (access.get('reader_roles') or []) -%}
    {%- if execute and roles -%}
        {%- set schemas = [] -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == 'model' and node.package_name == project_name
                  and 'marts' in node.fqn and node.schema not in schemas -%}
                {%- do schemas.append(node.schema) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- for schema in schemas -%}
            {%- if adapter.check_schema_exists(target.database, schema) -%}
                {%- for role in roles %}
        grant usage on schema {{ adapter.quote(schema) }} to {{ adapter.quote(role) }};
                {%- endfor %}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
