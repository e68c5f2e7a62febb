-- One row per client of a location: Booker's first visit (its whole history, not only what
-- was loaded), the visits loaded, and whether they came back within var retention_days.
with customers as (
    select c.location_id, c.id as customer_id,
           {{ local_day('c.customer_stats_date_of_first_visit', location_id='c.location_id') }}
               as first_visit_date
    from {{ source('booker', 'customers_current') }} as c
    left join {{ ref('stg_location_zones') }} as z on z.location_id = c.location_id
),

loaded as (
    select location_id, customer_id, min(visit_date) as first_loaded_visit, max(visit_date) as last_visit,
           count(*) as visits_loaded
    from {{ ref('stg_visits') }}
    group by all
),

coverage as (
    -- the first and last day whose orders are loaded, per location
    select location_id, min(report_date) as first_day, max(report_date) as last_day
    from {{ loads_table() }}
    where table_name = 'orders' and status = 'loaded'
    group by all
),

returns as (
    select c.location_id, c.customer_id, min(v.visit_date) as returned_on
    from customers as c
    join {{ ref('stg_visits') }} as v
      on v.location_id = c.location_id and v.customer_id = c.customer_id
     and v.visit_date > c.first_visit_date
     and v.visit_date <= c.first_visit_date + {{ var('retention_days') }}
    group by all
)

select
    c.location_id,
    c.customer_id,
    c.first_visit_date,
    date_trunc('month', c.first_visit_date)::date as cohort_month,
    l.first_loaded_visit,
    l.last_visit,
    coalesce(l.visits_loaded, 0) as visits_loaded,
    r.returned_on,
    -- known only when every day of the window after the first visit is loaded
    (c.first_visit_date >= k.first_day
     and c.first_visit_date + {{ var('retention_days') }} <= k.last_day) as window_observed,
    case when r.returned_on is not null then true
         when c.first_visit_date >= k.first_day
          and c.first_visit_date + {{ var('retention_days') }} <= k.last_day then false
    end as retained
from customers as c
left join loaded as l on l.location_id = c.location_id and l.customer_id = c.customer_id
left join returns as r on r.location_id = c.location_id and r.customer_id = c.customer_id
left join coverage as k on k.location_id = c.location_id
