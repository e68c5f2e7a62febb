{# amount ÷ count (count > 0) to the cent, half away from zero, in exact integer arithmetic:
   DuckDB divides a DECIMAL into a DOUBLE, whose rounding misses cents (1.005 → 1.00). #}
{% macro divide_to_cents(amount, count) -%}
    ((sign({{ amount }}) * ((2 * abs({{ amount }} * 100)::hugeint + {{ count }})
      // (2 * {{ count }})))::decimal(18, 0) * 0.01)::decimal(18, 2)
{%- endmacro %}
