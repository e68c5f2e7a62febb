{# booker._loads: every slice the loads wrote, empty days included, and when (loaded_at).
   Not a source of its own: every load writes it in the transaction of its slice, so a model
   that reads it is drawn downstream of the table whose slices it reads (`table`). #}
{% macro loads_table(table='orders') -%}
    {%- set of_table = source('booker', table) -%}
    {{ api.Relation.create(database=of_table.database, schema=of_table.schema,
                           identifier='_loads') }}
{%- endmacro %}
