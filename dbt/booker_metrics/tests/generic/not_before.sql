{# No row's `column_name` is before its `other` column: the incremental sales mart relies on a
   refund being made on or after its order's day to find the days a re-loaded slice touched. #}
{% test not_before(model, column_name, other) %}
select * from {{ model }} where {{ column_name }} < {{ other }}
{% endtest %}
