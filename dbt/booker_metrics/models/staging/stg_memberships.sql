-- Customers' memberships with their local start and end days.
select
    m.location_id,
    m.customer_membership_id,
    m.customer_id,
    m.membership_id,
    m.status_name,
    m.payment_frequency_type_name as payment_frequency,
    m.total_fee_amount as fee,
    {{ local_day('m.start_date', location_id='m.location_id') }} as start_day,
    {{ local_day('m.membership_expiration_date', location_id='m.location_id') }} as end_day
from {{ source('booker', 'customer_memberships_current') }} as m
left join {{ ref('stg_location_zones') }} as z on z.location_id = m.location_id
