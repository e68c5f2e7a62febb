-- Per location and month, from the first membership's start to this month: memberships
-- active, new and ended, and the recurring fees of the active ones.
with months as (
    select location_id, unnest(generate_series(
        date_trunc('month', min(start_day)), date_trunc('month', current_date), interval 1 month
    ))::date as month
    from {{ ref('stg_memberships') }}
    group by all
)

select
    mo.location_id,
    mo.month,
    count(m.customer_membership_id) filter (
        where m.start_day < mo.month + interval 1 month
          and (m.end_day is null or m.end_day >= mo.month)) as active,
    count(m.customer_membership_id) filter (
        where date_trunc('month', m.start_day) = mo.month) as new,
    count(m.customer_membership_id) filter (
        where date_trunc('month', m.end_day) = mo.month and m.end_day <= current_date) as ended,
    coalesce(sum(m.fee) filter (
        where m.start_day < mo.month + interval 1 month
          and (m.end_day is null or m.end_day >= mo.month)
          and m.payment_frequency in ('{{ var("recurring_frequencies") | join("', '") }}')),
        0)::decimal(18, 2) as recurring_fees
from months as mo
left join {{ ref('stg_memberships') }} as m on m.location_id = mo.location_id
group by all
