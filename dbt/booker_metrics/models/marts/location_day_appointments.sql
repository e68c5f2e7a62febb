-- Per location and local day: appointments booked to start that day and what became of them,
-- and the day's checkouts with how many rebooked (stg_checkouts).
with requested as (
    select distinct location_id, appointment_id
    from {{ ref('stg_appointment_lines') }}
    where employee_was_requested
),

checkouts as (
    select location_id, appointment_date, count(*) as checkouts,
           count(*) filter (where rebooked) as rebooked
    from {{ ref('stg_checkouts') }}
    group by all
),

days as (
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
)

select
    d.*,
    coalesce(c.checkouts, 0) as checkouts,
    coalesce(c.rebooked, 0) as rebooked,
    round(c.rebooked / nullif(c.checkouts, 0), 4) as rebooking_rate
from days as d
left join checkouts as c
  on c.location_id = d.location_id and c.appointment_date = d.appointment_date
