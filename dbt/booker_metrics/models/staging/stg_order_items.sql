-- Items of the counted orders, with the category a sale is reported under and its gross
-- amount (quantity x unit price, before discounts).
select
    i.location_id,
    o.order_date,
    i.order_id,
    i.id as order_item_id,
    case when i.is_service then 'service'
         when i.is_retail then 'retail'
         when i.is_gift_card then 'gift_card'
         else 'other' end as category,
    round(cast(i.quantity as decimal(18, 4)) * i.unit_price_amount, 2)::decimal(18, 2) as gross_amount,
    i.employee_id
from {{ source('booker', 'orders_items') }} as i
join {{ ref('stg_orders') }} as o
  on o.location_id = i.location_id and o.order_id = i.order_id and o.order_date = i.report_date
