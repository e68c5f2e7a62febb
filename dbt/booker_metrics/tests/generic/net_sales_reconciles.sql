{# Each day's net sales equal the counted orders' totals of that day minus the refunds made
   that day, recomputed from the staging models: a row that disagrees is returned (NULL on a
   day whose orders are not loaded). #}
{% test net_sales_reconciles(model) %}
with orders as (
    select location_id, order_date as day, sum(order_total) as totals
    from {{ ref('stg_orders') }} group by all
),
refunds as (
    select location_id, refund_date as day, sum(amount) as refunds
    from {{ ref('stg_refunds') }} group by all
)
select m.location_id, m.sales_date, m.net_sales,
       coalesce(o.totals, 0) - coalesce(r.refunds, 0) as expected
from {{ model }} as m
left join orders as o on o.location_id = m.location_id and o.day = m.sales_date
left join refunds as r on r.location_id = m.location_id and r.day = m.sales_date
where m.net_sales is distinct from
      case when m.orders_loaded then coalesce(o.totals, 0) - coalesce(r.refunds, 0) end
{% endtest %}
