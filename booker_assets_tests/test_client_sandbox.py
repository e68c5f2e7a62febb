"""The client against the running sandbox over real HTTP: a hostile server gives the same rows."""

from __future__ import annotations

from dataclasses import replace

from booker_assets.api.client import BookerResource
from booker_assets.load.dates import day_window, to_iso
from booker_assets.load.zones import zone_for
from booker_assets_tests.conftest import SANDBOX_SETTINGS
from booker_sandbox import BookerSandbox, FaultProfile

LOCATION = 1002  # Central time
DAY = SANDBOX_SETTINGS.start_date.replace(month=2, day=11)


def _fetch(sandbox: BookerSandbox, **tuning) -> dict[str, list]:
    client = BookerResource(base_url=sandbox.url, **sandbox.credentials, **tuning).get_client()
    start, end = day_window(DAY, zone_for(client.location(LOCATION)["TimeZone"]))
    window = {"FromDateCreatedOffset": to_iso(start), "ToDateCreatedOffset": to_iso(end)}
    merchant = "/v4.1/merchant"
    found = {
        "orders": client.find(f"{merchant}/orders", "Results", window, location_id=LOCATION),
        "employees": client.find(f"{merchant}/employees", "Results", location_id=LOCATION),
        "treatments": client.find(f"{merchant}/treatments", "Treatments", location_id=LOCATION),
        "locations": client.find(f"{merchant}/locations", "Results"),
    }
    rows = {name: sorted(r["ID"] for r in result.rows) for name, result in found.items()}
    rows["schedule"] = client.get(f"{merchant}/location/{LOCATION}/schedule",
                                  "LocationDaySchedules",
                                  {"fromDate": "2025-02-01", "toDate": "2025-02-28"},
                                  location_id=LOCATION)
    rows["schedule"] = [(s["Date"], s.get("StartTime")) for s in rows["schedule"]]
    rows["retries"] = sum(client.stats.snapshot()["retries"].values())
    return rows


def test_hostile_server_same_rows_as_clean(sandbox):
    clean = _fetch(sandbox)
    hostile = FaultProfile.hostile()
    hostile = replace(hostile, rate=0.3, timeout_sleep_s=0.6, page_cap=7)  # every page short
    with BookerSandbox(replace(SANDBOX_SETTINGS, faults=hostile, token_lifetime_s=5)) as bad:
        faulty = _fetch(bad, timeout_seconds=0.4, max_retries=10, page_size=100)
        injected = bad.stats.faults
    assert clean.pop("retries") == 0
    assert faulty.pop("retries") > 0
    assert len(clean["orders"]) > 10
    assert faulty == clean
    assert sum(injected.values()) > 5


def test_the_list_asked_soon_answers_the_next_locations_call_once(sandbox):
    """A run's drift check reads the list its step asked while its requests flowed (assets.py)
    instead of asking it after the step's writes; a later call asks afresh."""
    client = BookerResource(base_url=sandbox.url, **sandbox.credentials).get_client()
    route = "POST /v4.1/merchant/locations"
    before = sandbox.stats.by_route[route]
    client.locations_soon()
    listed = client.locations()
    assert sandbox.stats.by_route[route] == before + 1
    assert [loc["ID"] for loc in listed] == [1001, 1002, 1003, 1004]
    assert client.locations() == listed
    assert sandbox.stats.by_route[route] == before + 2
