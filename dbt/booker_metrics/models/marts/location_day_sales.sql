{#- Per location and local day: what was sold, refunded and kept. Incremental: a refresh
    recomputes only the days of the order slices loaded since the last one (booker._loads),
    the days their refunds were made, and the days that held a refund a re-loaded slice may
    no longer have, so its cost follows the load, not the history. The post-hook removes a
    day left with neither loaded orders nor refunds (delete+insert only replaces the keys it
    writes, so it would otherwise keep the day's old row). -#}
{{ config(materialized='incremental', unique_key=['location_id', 'sales_date'],
          incremental_strategy='delete+insert', on_schema_change='fail',
          post_hook="delete from {{ this }} where not orders_loaded and refund_count = 0") }}

with loaded_days as (
    -- the days whose orders are loaded, empty days included: a day with no orders has zeros
    select distinct location_id, report_date
    from {{ loads_table() }}
    where table_name = 'orders' and status = 'loaded'
),

order_slices as (
    -- the slices of the order tables to (re)compute: all, or those loaded since the last run
    select distinct location_id, report_date
    from {{ loads_table() }}
    where table_name in ('orders', 'orders_items', 'orders_refunds') and status = 'loaded'
    {% if is_incremental() %}
      and loaded_at > (select max(loads_seen_until) from {{ this }})
                      - interval ({{ var('incremental_overlap_minutes') }}) minute
    {% endif %}
),

days as (
    select location_id, report_date as sales_date from order_slices
    union
    select r.location_id, r.refund_date
    from {{ ref('stg_refunds') }} as r
    join order_slices as s on s.location_id = r.location_id and s.report_date = r.order_date
    {% if is_incremental() %}
    union
    -- a refund gone from a re-loaded slice left no row to find it by: recompute the days that
    -- held refunds from the location's first re-loaded day on (a refund follows its order)
    select t.location_id, t.sales_date
    from {{ this }} as t
    join (select location_id, min(report_date) as first_day from order_slices group by all) as s
      on s.location_id = t.location_id and t.sales_date >= s.first_day
    where t.refund_count > 0
    {% endif %}
),

orders as (
    select
        o.location_id,
        o.order_date as sales_date,
        count(*) as orders,
        sum(o.discount) as discounts,
        sum(o.tax) as tax,
        sum(o.tip) as tips,
        sum(o.order_total) as order_totals,
        sum(o.order_total
            {%- if not var('ticket_includes_tax_and_tip') %} - o.tax - o.tip{% endif %}) as ticket_totals,
        count(distinct o.customer_id) as distinct_clients
    from {{ ref('stg_orders') }} as o
    join days as d on d.location_id = o.location_id and d.sales_date = o.order_date
    group by all
),

items as (
    select
        i.location_id,
        i.order_date as sales_date,
        sum(i.gross_amount) filter (where i.category = 'service') as gross_service_sales,
        sum(i.gross_amount) filter (where i.category = 'retail') as gross_retail_sales,
        sum(i.gross_amount) filter (where i.category = 'gift_card') as gross_gift_card_sales
    from {{ ref('stg_order_items') }} as i
    join days as d on d.location_id = i.location_id and d.sales_date = i.order_date
    group by all
),

refunds as (
    select r.location_id, r.refund_date as sales_date, count(*) as refund_count,
           sum(r.amount) as refunds
    from {{ ref('stg_refunds') }} as r
    join days as d on d.location_id = r.location_id and d.sales_date = r.refund_date
    group by all
)

{#- a figure of the day's orders: 0 when none, NULL when that day's orders are not loaded
    (a refund made on a day never loaded still counts; what that day sold is unknown) #}
{%- set loaded = 'l.location_id is not null' %}

select
    d.location_id,
    d.sales_date,
    l.location_id is not null as orders_loaded,
    case when {{ loaded }} then coalesce(o.orders, 0) end as orders,
    case when {{ loaded }} then coalesce(i.gross_service_sales, 0) end::decimal(18, 2) as gross_service_sales,
    case when {{ loaded }} then coalesce(i.gross_retail_sales, 0) end::decimal(18, 2) as gross_retail_sales,
    case when {{ loaded }} then coalesce(i.gross_gift_card_sales, 0) end::decimal(18, 2) as gross_gift_card_sales,
    case when {{ loaded }} then coalesce(o.discounts, 0) end::decimal(18, 2) as discounts,
    case when {{ loaded }} then coalesce(o.tax, 0) end::decimal(18, 2) as tax,
    case when {{ loaded }} then coalesce(o.tips, 0) end::decimal(18, 2) as tips,
    case when {{ loaded }} then coalesce(o.order_totals, 0) end::decimal(18, 2) as order_totals,
    coalesce(r.refund_count, 0) as refund_count,
    coalesce(r.refunds, 0)::decimal(18, 2) as refunds,
    (case when {{ loaded }} then coalesce(o.order_totals, 0) end - coalesce(r.refunds, 0))::decimal(18, 2) as net_sales,
    case when o.orders > 0 then {{ divide_to_cents('o.ticket_totals', 'o.orders') }} end
        as average_ticket,
    case when {{ loaded }} then coalesce(o.distinct_clients, 0) end as distinct_clients,
    (select max(loaded_at) from {{ loads_table() }}) as loads_seen_until
from days as d
left join loaded_days as l on l.location_id = d.location_id and l.report_date = d.sales_date
left join orders as o on o.location_id = d.location_id and o.sales_date = d.sales_date
left join items as i on i.location_id = d.location_id and i.sales_date = d.sales_date
left join refunds as r on r.location_id = d.location_id and r.sales_date = d.sales_date
