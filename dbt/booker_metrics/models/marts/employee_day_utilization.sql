-- Per location, employee and local day: minutes scheduled (the employee's schedule), minutes
-- booked (service lines of appointments that took place) and their ratio.
with scheduled as (
    select location_id, employee_id, "date" as work_date,
           sum(date_diff('minute', start_time, end_time))::bigint as scheduled_minutes
    from {{ source('booker', 'employee_schedules') }}
    where not coalesce(is_off, false) and "date" is not null
    group by all
),

booked as (
    {{ booked_minutes_by('employee_id', 'work_date') }}
)

select
    coalesce(s.location_id, b.location_id) as location_id,
    coalesce(s.employee_id, b.employee_id) as employee_id,
    coalesce(s.work_date, b.work_date) as work_date,
    coalesce(s.scheduled_minutes, 0) as scheduled_minutes,
    coalesce(b.booked_minutes, 0) as booked_minutes,
    round(b.booked_minutes / nullif(s.scheduled_minutes, 0), 4) as utilization
from scheduled as s
full join booked as b
  on b.location_id = s.location_id and b.employee_id = s.employee_id
 and b.work_date = s.work_date
