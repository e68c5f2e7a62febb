-- Refunds on the local day they were made. The loads store a refund on its order's day
-- (report_date); its own day comes from its time and the location's zone.
select
    r.location_id,
    r.report_date as order_date,
    r.order_id,
    r.refund_index,
    r.amount_amount as amount,
    {{ local_day('r.date_created', location_id='r.location_id') }} as refund_date,
    r._loaded_at
from {{ source('booker', 'orders_refunds') }} as r
left join {{ ref('stg_location_zones') }} as z on z.location_id = r.location_id
