{# Marts live in schema `metrics` beside `booker`, not in `main_metrics`: an analyst types
   metrics.location_day_sales. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name or target.schema }}
{%- endmacro %}
