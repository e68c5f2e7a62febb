{# The rows of `model` are unique by `columns` together (dbt's own `unique` takes one column). #}
{% test unique_key(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows
from {{ model }}
group by all
having count(*) > 1
{% endtest %}
