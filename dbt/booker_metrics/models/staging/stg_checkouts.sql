-- A client's checkout: a completed appointment (var completed_statuses) and the time its order
-- was completed, and whether the client rebooked there: another appointment of theirs,
-- starting later, booked at the checkout or within var rebooking_hours after it. Later
-- appointments are read from the days loaded and from the book ahead each load observed
-- (appointment_book, BOOKER_LOOKAHEAD_DAYS): a rebooking further ahead is seen once a load's
-- book reaches its start. Booker's IsPreBookedAtPastCheckout does not say which checkout, so
-- it is not used to pair one (location_day_appointments counts it as it comes).
with checkouts as (
    select a.location_id, a.appointment_date, a.appointment_id, a.customer_id,
           o.date_completed as checkout_at
    from {{ ref('stg_appointments') }} as a
    join {{ source('booker', 'orders') }} as o
      on o.location_id = a.location_id and o.id = a.order_id
    where a.status_name in ('{{ var("completed_statuses") | join("', '") }}')
      and a.customer_id is not null and o.date_completed is not null
      and not coalesce(o.is_deleted, false)
),

book as (
    select location_id, id, customer_id, start_date_time, date_booked
    from {{ source('booker', 'appointments') }}
    union
    select location_id, id, customer_id, start_date_time, date_booked
    from {{ source('booker', 'appointment_book') }}
),

rebooked as (
    select distinct c.location_id, c.appointment_id
    from checkouts as c
    join book as b
      on b.location_id = c.location_id and b.customer_id = c.customer_id
     and b.id <> c.appointment_id and b.start_date_time > c.checkout_at
     and b.date_booked >= c.checkout_at
     and b.date_booked <= c.checkout_at + interval ({{ var('rebooking_hours') }}) hour
)

select c.*, r.appointment_id is not null as rebooked
from checkouts as c
left join rebooked as r on r.location_id = c.location_id and r.appointment_id = c.appointment_id
