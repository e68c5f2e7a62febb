-- Orders that count as sales (var counted_order_statuses; deleted ones never), on the local
-- day Booker created them: the loads place each order on that day (report_date).
select
    location_id,
    report_date as order_date,
    id as order_id,
    customer_id,
    status_name,
    sub_total_amount as sub_total,
    discount_amount as discount,
    total_taxes_amount as tax,
    total_tip_amount as tip,
    final_total_amount as order_total,
    _loaded_at
from {{ source('booker', 'orders') }}
where not coalesce(is_deleted, false)
  and status_name in ('{{ var("counted_order_statuses") | join("', '") }}')
