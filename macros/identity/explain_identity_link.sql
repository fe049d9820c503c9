{#-
    Why are these two identifiers in one profile? Prints the shortest path of kept edges between
    them, each edge with the source record that created it, and returns it as a list of rows.

        dbt run-operation explain_identity_link --profiles-dir profiles --args \
          '{type_a: email, value_a: ann@x.com, type_b: anonymous_id, value_b: d-123}'

    Breadth-first search over identity_edges in SQL (one query per hop, frontier tables), capped
    at var identity.max_explain_hops (default 50).
-#}
{% macro explain_identity_link(type_a, value_a, type_b, value_b, max_hops=none) %}
    {%- set edges = ref('identity_edges') -%}
    {%- set hops = max_hops or var('identity').get('max_explain_hops', 50) -%}
    {%- set start = identity_key("'" ~ type_a ~ "'", "'" ~ (value_a | replace("'", "''")) ~ "'") -%}
    {%- set goal = identity_key("'" ~ type_b ~ "'", "'" ~ (value_b | replace("'", "''")) ~ "'") -%}
    {%- set key_a = identity_key('identifier_type_a', 'identifier_value_a') -%}
    {%- set key_b = identity_key('identifier_type_b', 'identifier_value_b') -%}
    {%- set directed -%}
        (select {{ key_a }} as from_key, {{ key_b }} as to_key, source, source_record_id,
                record_count
         from {{ edges }} where is_kept
         union all
         select {{ key_b }} as from_key, {{ key_a }} as to_key, source, source_record_id,
                record_count
         from {{ edges }} where is_kept)
    {%- endset -%}
    {#- visited: identity key -> the edge that reached it (parent key, source record) -#}
    {%- set visited = 'identity_explain_visited' -%}
    {%- set text = dbt.type_string() -%}
    {%- do run_query('drop table if exists ' ~ visited) -%}
    {%- do run_query('create temporary table ' ~ visited ~ ' as select ' ~ start
        ~ ' as node_key, cast(null as ' ~ text ~ ') as parent_key, cast(null as ' ~ text
        ~ ') as source, cast(null as ' ~ text ~ ') as source_record_id, 0 as hop') -%}
    {%- set state = namespace(found=false, stuck=false, cursor=goal) -%}
    {%- for hop in range(1, hops + 1) -%}
        {%- if not state.found and not state.stuck -%}
            {%- set found = run_query('select count(*) from ' ~ visited ~ ' where node_key = ' ~ goal) -%}
            {%- if (found.columns[0].values()[0] | int) > 0 -%}
                {%- set state.found = true -%}
            {%- else -%}
                {%- set added = run_query(
                    'insert into ' ~ visited ~ ' select to_key, min(from_key), min(source), '
                    ~ 'min(source_record_id), ' ~ hop ~ ' from ' ~ directed ~ ' as e '
                    ~ 'where from_key in (select node_key from ' ~ visited ~ ' where hop = ' ~ (hop - 1) ~ ') '
                    ~ 'and to_key not in (select node_key from ' ~ visited ~ ') group by to_key') -%}
                {%- set added = run_query('select count(*) from ' ~ visited ~ ' where hop = ' ~ hop) -%}
                {%- if (added.columns[0].values()[0] | int) == 0 -%}{%- set state.stuck = true -%}{%- endif -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set path = [] -%}
    {%- if state.found -%}
        {%- for step in range(hops + 1) -%}
            {%- set row = run_query('select node_key, parent_key, source, source_record_id from '
                ~ visited ~ ' where node_key = ' ~ state.cursor).rows[0] -%}
            {%- if row[1] is not none -%}
                {%- do path.insert(0, {'from': row[1], 'to': row[0], 'source': row[2],
                                       'source_record_id': row[3]}) -%}
                {%- set state.cursor = "'" ~ (row[1] | replace("'", "''")) ~ "'" -%}
            {%- endif -%}
        {%- endfor -%}
        {{ log('Linked in ' ~ (path | length) ~ ' kept edge(s):', info=true) }}
        {%- for edge in path -%}
            {{ log('  ' ~ edge['from'] ~ '  --  ' ~ edge['to'] ~ '   (' ~ edge['source'] ~ ' '
                   ~ edge['source_record_id'] ~ ')', info=true) }}
        {%- endfor -%}
    {%- else -%}
        {{ log('Not linked by kept edges within ' ~ hops ~ ' hops: not in one profile.', info=true) }}
    {%- endif -%}
    {%- do run_query('drop table if exists ' ~ visited) -%}
    {{ return(path) }}
{% endmacro %}
