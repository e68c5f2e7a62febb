-- Appointments on the local day they start (the loads place each on that day), with the
-- status they had at the day's latest load.
select
    location_id,
    report_date as appointment_date,
    id as appointment_id,
    customer_id,
    order_id,
    status_name,
    coalesce(is_cancelled, false) as is_cancelled,
    coalesce(is_no_show, false) as is_no_show,
    coalesce(is_web_booking, false) as is_web_booking,
    coalesce(is_pre_booked_at_past_checkout, false) as is_pre_booked_at_past_checkout
from {{ source('booker', 'appointments') }}
