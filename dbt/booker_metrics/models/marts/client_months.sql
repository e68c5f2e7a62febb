-- Per location and month: clients who visited, how many were new (their first visit that
-- month) or returning, and the month's cohort of new clients and its return rate.
with visiting as (
    select v.location_id, date_trunc('month', v.visit_date)::date as month,
           count(distinct v.customer_id) as visiting_clients,
           count(distinct v.customer_id) filter (
               where date_trunc('month', c.first_visit_date) = date_trunc('month', v.visit_date)
           ) as new_clients
    from {{ ref('stg_visits') }} as v
    left join {{ ref('clients') }} as c
      on c.location_id = v.location_id and c.customer_id = v.customer_id
    group by all
),

cohorts as (
    select location_id, cohort_month as month,
           count(*) as cohort_clients,
           count(*) filter (where retained is not null) as cohort_observed,
           count(*) filter (where retained) as cohort_retained
    from {{ ref('clients') }}
    where cohort_month is not null
    group by all
)

select
    coalesce(v.location_id, c.location_id) as location_id,
    coalesce(v.month, c.month) as month,
    coalesce(v.visiting_clients, 0) as visiting_clients,
    coalesce(v.new_clients, 0) as new_clients,
    coalesce(v.visiting_clients, 0) - coalesce(v.new_clients, 0) as returning_clients,
    coalesce(c.cohort_clients, 0) as cohort_clients,
    coalesce(c.cohort_observed, 0) as cohort_observed,
    coalesce(c.cohort_retained, 0) as cohort_retained,
    round(c.cohort_retained / nullif(c.cohort_observed, 0), 4) as cohort_return_rate
from visiting as v
full join cohorts as c on c.location_id = v.location_id and c.month = v.month
