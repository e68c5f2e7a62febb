-- Per location, room and local day: minutes the room was available, service minutes booked in
-- it (lines of appointments that took place) and their ratio. Booker publishes no schedule of
-- a room: it is available while its location is open (the location's schedule that day, or
-- var room_available_minutes on each day it is open), times its Capacity (a couples suite
-- holds two lines at once). A room counts from the day it was created (the rooms snapshot).
-- What is not known stays NULL: the availability of a room only a booked line names (or with
-- no creation time), or of a day whose location schedule is not loaded. Booker may book more than a room's capacity at
-- once (a nail bar), so utilization can exceed 1.
with open_days as (
    -- a closed day is 0 minutes; a day whose schedule is not loaded has no row
    select location_id, "date" as room_date,
           coalesce(sum(date_diff('minute', start_time, end_time))
                    filter (where not coalesce(is_closed, false)), 0)::bigint as open_minutes
    from {{ source('booker', 'location_schedules') }}
    where "date" is not null
    group by all
),

rooms as (
    select r.location_id, r.id as room_id, r.capacity,
           {{ local_day('r.date_created', location_id='r.location_id') }} as created_day
    from {{ source('booker', 'rooms_current') }} as r
    left join {{ ref('stg_location_zones') }} as z on z.location_id = r.location_id
),

available as (
    select o.location_id, r.room_id, o.room_date,
           {% if var('room_available_minutes') is none -%} o.open_minutes
           {%- else -%} least(o.open_minutes, {{ var('room_available_minutes') }})
           {%- endif %} * r.capacity as available_minutes
    from open_days as o
    join rooms as r on r.location_id = o.location_id
     and r.created_day <= o.room_date
),

booked as (
    {{ booked_minutes_by('room_id', 'room_date') }}
)

select
    coalesce(a.location_id, b.location_id) as location_id,
    coalesce(a.room_id, b.room_id) as room_id,
    coalesce(a.room_date, b.room_date) as room_date,
    a.available_minutes,
    coalesce(b.booked_minutes, 0) as booked_minutes,
    round(b.booked_minutes / nullif(a.available_minutes, 0), 4) as utilization
from available as a
full join booked as b
  on b.location_id = a.location_id and b.room_id = a.room_id and b.room_date = a.room_date
