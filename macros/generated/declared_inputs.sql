{#- Default until the input compiler writes this file from inputs/*.yml: no declared inputs. -#}
{% macro declared_inputs() -%}
    {{ return([]) }}
{%- endmacro %}
