{# Booked service minutes per location, `by` (employee_id or room_id) and appointment day,
   named `day`: the numerator of every utilization mart, defined once. #}
{% macro booked_minutes_by(by, day) -%}
    select location_id, {{ by }}, appointment_date as {{ day }},
           sum(booked_minutes)::bigint as booked_minutes
    from {{ ref('stg_appointment_lines') }}
    where {{ by }} is not null
    group by all
{%- endmacro %}
