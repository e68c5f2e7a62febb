-- A client's visit: a local day on which they have a counted order at the location.
select distinct location_id, customer_id, order_date as visit_date
from {{ ref('stg_orders') }}
where customer_id is not null
