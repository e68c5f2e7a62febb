{# The local day of `instant` at its location, by the zone of stg_location_zones joined as
   `zones`. A location with rows but no zone fails the query, naming it and the fix: a zone is
   never guessed, and a NULL day would drop the row from every day's figures. A warehouse
   loaded only with past days has no location snapshot (one is stored only for a day that can
   still be observed), hence no zone. #}
{% macro local_day(instant, zones='z', location_id='location_id') -%}
    cast(timezone(
        case when {{ zones }}.iana_zone is null and {{ instant }} is not null then error(
            'location ' || {{ location_id }} || ' has no time zone: '
            || case when {{ zones }}.location_id is null
                    then 'booker.locations holds no row of it (a load of past days stores no location snapshot). Fix: load today''s locations (booker-assets backfill --from TODAY --to TODAY --assets locations --locations '
                         || {{ location_id }} || ', or let the daily load run), then refresh the metrics'
                    else 'its Booker zone is none the zone reader knows (metrics.stg_location_zones). Fix: add it to booker_assets/load/zones.py'
               end)
        else {{ zones }}.iana_zone end,
        {{ instant }}) as date)
{%- endmacro %}
