-- Per location and local day: appointments booked to start that day and what became of them.
with requested as (
    select distinct location_id, appointment_id
    from {{ ref('stg_appointment_lines') }}
    where employee_was_requested
)

select
    a.location_id,
    a.appointment_date,
    count(*) as booked,
    count(*) filter (where a.status_name in ('{{ var("completed_statuses") | join("', '") }}'))
        as completed,
    count(*) filter (where a.is_cancelled) as cancelled,
    count(*) filter (where a.is_no_show) as no_shows,
    count(*) filter (where a.is_web_booking) as booked_online,
    count(*) filter (where a.is_pre_booked_at_past_checkout) as prebooked_at_checkout,
    round(count(r.appointment_id) / nullif(count(*) filter (
        where not a.is_cancelled and not a.is_no_show), 0), 4) as requested_employee_share
from {{ ref('stg_appointments') }} as a
left join requested as r
  on r.location_id = a.location_id and r.appointment_id = a.appointment_id
group by all
