-- Service lines of the appointments that took place (not cancelled, not a no-show), with
-- their booked minutes (end − start).
select
    l.location_id,
    a.appointment_date,
    l.appointment_id,
    l.id as line_id,
    l.employee_id,
    l.room_id,
    coalesce(l.employee_was_requested, false) as employee_was_requested,
    date_diff('minute', l.start_date_time, l.end_date_time) as booked_minutes
from {{ source('booker', 'appointment_treatments') }} as l
join {{ ref('stg_appointments') }} as a
  on a.location_id = l.location_id and a.appointment_id = l.appointment_id
 and a.appointment_date = l.report_date
where not a.is_cancelled and not a.is_no_show
