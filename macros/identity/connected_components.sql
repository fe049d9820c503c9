{#-
    Materialization `connected_components`: the model's SQL returns undirected edges
    (node_a, node_b) between integer node ids; the result is a table of
    (node_id, component_id, rounds) for every node on an edge, component_id = the smallest node id
    of its component and rounds = the number of contraction rounds it took.

    Algorithm (contraction with min-hooking and pointer jumping; rounds grow with log(diameter)):
      1. every current node hooks to the smallest of itself and its neighbours;
      2. pointer jumping: parent := parent(parent) until no pointer moves, so each hook tree
         collapses to its root in log(depth) steps;
      3. the edges are rewritten onto the roots; edges inside one root disappear, so a component
         that has converged drops out of every later round (only unfinished parts are touched);
      4. repeat until no edge is left. Each node is retired (given a parent) exactly once; a final
         pointer jumping over the retired pointers gives every node its component's root.
    Reaching var identity.max_rounds or identity.max_pointer_jumps fails the run: it never
    stops early and under-merges silently.

    Incremental re-stitching: the edge list of each run is kept beside the table
    (`<model>__cc_previous_edges`; node ids are stable hashes). The next run compares its edges
    with it; the ends of every added or removed edge are touched, and only the previous components
    holding a touched node (plus the touched nodes) are recomputed, on the current edges among
    them. Every other component is unchanged and copied. This gives exactly the components of a
    full computation: an untouched component has the same edges as before and no edge leaving it.
    `dbt run --full-refresh`, config incremental=false or a missing edge list computes everything.
-#}
{% materialization connected_components, default %}
    {%- set settings = var('identity') -%}
    {%- set max_rounds = config.get('max_rounds', settings['max_rounds']) | int -%}
    {%- set max_jumps = config.get('max_pointer_jumps', settings['max_pointer_jumps']) | int -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set prefix = this.identifier ~ '__cc_' -%}
    {%- set previous_edges = adapter.get_relation(
        database=this.database, schema=this.schema, identifier=prefix ~ 'previous_edges') -%}
    {%- set incremental = config.get('incremental', true) and not should_full_refresh()
        and existing_relation is not none and previous_edges is not none -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- set current_edges = cc_scratch(prefix ~ 'current_edges') -%}
    {%- do cc_create(current_edges, cc_canonical_edges_sql(sql)) -%}
    {%- set edges = cc_scratch(prefix ~ 'edges') -%}
    {%- set parents = cc_scratch(prefix ~ 'parents') -%}
    {%- if incremental -%}
        {%- set affected = cc_scratch(prefix ~ 'affected') -%}
        {%- do cc_create(affected, cc_affected_nodes_sql(current_edges, previous_edges, existing_relation)) -%}
        {%- do cc_create(edges, cc_symmetric_edges_sql(
            'select node_a, node_b from ' ~ current_edges
            ~ ' where node_a in (select node_id from ' ~ affected ~ ')')) -%}
        {{ log('connected_components ' ~ this.identifier ~ ': incremental, '
               ~ cc_count(affected) ~ ' node(s) in touched components re-stitched, '
               ~ cc_count(current_edges) ~ ' edges in the graph', info=true) }}
    {%- else -%}
        {%- do cc_create(edges, cc_symmetric_edges_sql('select node_a, node_b from ' ~ current_edges)) -%}
        {{ log('connected_components ' ~ this.identifier ~ ': full computation, '
               ~ cc_count(current_edges) ~ ' edges', info=true) }}
    {%- endif -%}
    {%- do cc_create(parents, cc_empty_parents_sql()) -%}

    {%- set state = namespace(converged=false, rounds=0, edges=edges) -%}
    {%- for round_number in range(1, max_rounds + 1) -%}
        {%- if not state.converged -%}
            {%- set remaining = cc_count(state.edges) -%}
            {{ log('connected_components ' ~ this.identifier ~ ': round ' ~ round_number
                   ~ ', ' ~ remaining ~ ' directed edges', info=true) }}
            {%- if remaining == 0 -%}
                {%- set state.converged = true -%}
            {%- else -%}
                {%- set state.rounds = round_number -%}
                {%- set hooks = cc_scratch(prefix ~ 'hooks_' ~ round_number) -%}
                {%- do cc_create(hooks, cc_hook_sql(state.edges)) -%}
                {%- set hooks = cc_pointer_jump(hooks, prefix ~ 'hooks_' ~ round_number, max_jumps) -%}
                {%- do run_query(cc_insert_retired_sql(parents, hooks)) -%}
                {%- set next_edges = cc_scratch(prefix ~ 'edges_' ~ round_number) -%}
                {%- do cc_create(next_edges, cc_contract_sql(state.edges, hooks)) -%}
                {%- do adapter.drop_relation(state.edges) -%}
                {%- do adapter.drop_relation(hooks) -%}
                {%- set state.edges = next_edges -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not state.converged and cc_count(state.edges) == 0 -%}
        {%- set state.converged = true -%}
    {%- endif -%}
    {%- if not state.converged -%}
        {%- do adapter.drop_relation(state.edges) -%}
        {%- do adapter.drop_relation(parents) -%}
        {%- do adapter.drop_relation(current_edges) -%}
        {{ exceptions.raise_compiler_error(
            'connected_components ' ~ this.identifier ~ ': not converged after ' ~ max_rounds
            ~ ' rounds (var identity.max_rounds); refusing to under-merge') }}
    {%- endif -%}
    {%- do adapter.drop_relation(state.edges) -%}
    {%- set roots = cc_pointer_jump(parents, prefix ~ 'parents', max_jumps) -%}

    {%- if incremental -%}
        {%- set result_sql = cc_result_sql(roots, state.rounds)
            ~ ' union all select node_id, component_id, rounds from ' ~ existing_relation
            ~ ' where node_id not in (select node_id from ' ~ affected ~ ')' -%}
    {%- else -%}
        {%- set result_sql = cc_result_sql(roots, state.rounds) -%}
    {%- endif -%}
    {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
    {%- do adapter.drop_relation(intermediate_relation) -%}
    {% call statement('main') -%}
        {{ get_create_table_as_sql(False, intermediate_relation, result_sql) }}
    {%- endcall %}
    {%- do adapter.drop_relation(roots) -%}
    {%- if incremental -%}
        {%- do adapter.drop_relation(affected) -%}
    {%- endif -%}
    {%- if existing_relation is not none -%}
        {%- do adapter.drop_relation(existing_relation) -%}
    {%- endif -%}
    {%- do adapter.rename_relation(intermediate_relation, target_relation) -%}
    {#- The edge list is swapped last: a failure before this point leaves the previous table and
        edge list together; a failure after the table swap only makes the next run touch more. -#}
    {%- set kept_edges = api.Relation.create(database=this.database, schema=this.schema,
        identifier=prefix ~ 'previous_edges', type='table') -%}
    {%- do adapter.drop_relation(kept_edges) -%}
    {%- do adapter.rename_relation(current_edges, kept_edges) -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{% macro cc_canonical_edges_sql(edges_sql) -%}
    {#- The model's edges once each, smaller id first, without self-loops. -#}
    with input_edges as (
        {{ edges_sql }}
    ),

    typed as (
        select
            cast(node_a as {{ dbt.type_bigint() }}) as node_a,
            cast(node_b as {{ dbt.type_bigint() }}) as node_b
        from input_edges
    )

    select distinct
        case when node_a < node_b then node_a else node_b end as node_a,
        case when node_a < node_b then node_b else node_a end as node_b
    from typed
    where node_a <> node_b
{%- endmacro %}


{% macro cc_affected_nodes_sql(current_edges, previous_edges, existing) -%}
    {#- Ends of added or removed edges, and every node of a previous component holding one. -#}
    with added as (
        select node_a, node_b from {{ current_edges }}
        except
        select node_a, node_b from {{ previous_edges }}
    ),

    removed as (
        select node_a, node_b from {{ previous_edges }}
        except
        select node_a, node_b from {{ current_edges }}
    ),

    changed as (
        select node_a, node_b from added
        union all
        select node_a, node_b from removed
    ),

    touched as (
        select node_a as node_id from changed
        union
        select node_b as node_id from changed
    ),

    touched_components as (
        select distinct existing.component_id
        from {{ existing }} as existing
        inner join touched on existing.node_id = touched.node_id
    )

    select touched.node_id from touched
    union
    select existing.node_id
    from {{ existing }} as existing
    inner join touched_components
        on existing.component_id = touched_components.component_id
{%- endmacro %}


{% macro cc_scratch(identifier) -%}
    {%- set relation = api.Relation.create(
        database=this.database, schema=this.schema, identifier=identifier, type='table') -%}
    {%- do adapter.drop_relation(relation) -%}
    {{ return(relation) }}
{%- endmacro %}


{% macro cc_create(relation, sql) -%}
    {%- do run_query(get_create_table_as_sql(False, relation, sql)) -%}
{%- endmacro %}


{% macro cc_count(relation) -%}
    {%- set result = run_query('select count(*) from ' ~ relation) -%}
    {{ return(result.columns[0].values()[0] | int) }}
{%- endmacro %}


{% macro cc_symmetric_edges_sql(edges_sql) -%}
    with input_edges as (
        {{ edges_sql }}
    ),

    directed as (
        select cast(node_a as {{ dbt.type_bigint() }}) as node_a, cast(node_b as {{ dbt.type_bigint() }}) as node_b
        from input_edges
        union all
        select cast(node_b as {{ dbt.type_bigint() }}) as node_a, cast(node_a as {{ dbt.type_bigint() }}) as node_b
        from input_edges
    )

    select distinct node_a, node_b
    from directed
    where node_a <> node_b
{%- endmacro %}


{% macro cc_empty_parents_sql() -%}
    select
        cast(null as {{ dbt.type_bigint() }}) as node_id,
        cast(null as {{ dbt.type_bigint() }}) as parent_id
    where 1 = 0
{%- endmacro %}


{% macro cc_hook_sql(edges) -%}
    {#- Every node on an edge points to the smallest of itself and its neighbours. -#}
    select
        node_a as node_id,
        case when min(node_b) < node_a then min(node_b) else node_a end as parent_id
    from {{ edges }}
    group by node_a
{%- endmacro %}


{% macro cc_pointer_jump(relation, name, max_jumps) -%}
    {#- parent := parent(parent) until nothing moves; returns the relation of the fixed point. -#}
    {%- set state = namespace(current=relation, done=false) -%}
    {%- for jump in range(1, max_jumps + 1) -%}
        {%- if not state.done -%}
            {%- set moving = run_query(
                'select count(*) from ' ~ state.current ~ ' as child inner join ' ~ state.current
                ~ ' as parent on child.parent_id = parent.node_id'
                ~ ' where parent.parent_id <> child.parent_id') -%}
            {%- if (moving.columns[0].values()[0] | int) == 0 -%}
                {%- set state.done = true -%}
            {%- else -%}
                {%- set jumped = cc_scratch(name ~ '_jump_' ~ jump) -%}
                {%- do cc_create(jumped,
                    'select child.node_id, coalesce(parent.parent_id, child.parent_id) as parent_id'
                    ~ ' from ' ~ state.current ~ ' as child left join ' ~ state.current
                    ~ ' as parent on child.parent_id = parent.node_id') -%}
                {%- do adapter.drop_relation(state.current) -%}
                {%- set state.current = jumped -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not state.done -%}
        {{ exceptions.raise_compiler_error(
            'connected_components: pointer jumping did not settle in ' ~ max_jumps
            ~ ' steps (var identity.max_pointer_jumps)') }}
    {%- endif -%}
    {{ return(state.current) }}
{%- endmacro %}


{% macro cc_insert_retired_sql(parents, hooks) -%}
    insert into {{ parents }} (node_id, parent_id)
    select node_id, parent_id
    from {{ hooks }}
    where parent_id <> node_id
{%- endmacro %}


{% macro cc_contract_sql(edges, hooks) -%}
    {#- Rewrite every edge onto the roots of its ends; edges inside one root vanish. -#}
    select distinct
        hook_a.parent_id as node_a,
        hook_b.parent_id as node_b
    from {{ edges }} as edges
    inner join {{ hooks }} as hook_a on edges.node_a = hook_a.node_id
    inner join {{ hooks }} as hook_b on edges.node_b = hook_b.node_id
    where hook_a.parent_id <> hook_b.parent_id
{%- endmacro %}


{% macro cc_result_sql(roots, rounds) -%}
    {#- Retired nodes carry their root; roots themselves are their own component. -#}
    select
        node_id,
        parent_id as component_id,
        {{ rounds }} as rounds
    from {{ roots }}
    union all
    select distinct
        parent_id as node_id,
        parent_id as component_id,
        {{ rounds }} as rounds
    from {{ roots }}
    where parent_id not in (select node_id from {{ roots }})
{%- endmacro %}
