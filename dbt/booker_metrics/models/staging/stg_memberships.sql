-- Customers' memberships with their local start and end days.
select
    m.location_id,
    m.customer_membership_id,
    m.customer_id,
    m.membership_id,
    m.status_name,
    m.payment_frequency_type_name as payment_frequency,
    m.total_fee_amount as fee,
    cast(timezone(z.iana_zone, m.start_date) as date) as start_day,
    cast(timezone(z.iana_zone, m.membership_expiration_date) as date) as end_day
from {{ source('booker', 'customer_memberships_current') }} as m
left join {{ ref('stg_location_zones') }} as z on z.location_id = m.location_id
