"""The Booker sandbox over real HTTP: auth, scopes, paging, windows, data, limits and faults."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import pytest
import requests

from booker_assets.load.dates import EASTERN, read_date
from booker_sandbox import (
    DEMO_CREDENTIALS,
    HARD_KINDS,
    TRANSIENT_KINDS,
    BookerSandbox,
    FaultProfile,
    SandboxSettings,
    embedded_url,
)

NOW = datetime(2025, 6, 30, 12, tzinfo=timezone.utc)
SETTINGS = SandboxSettings(start_date=date(2025, 1, 1), now=NOW)
KEY = {"Ocp-Apim-Subscription-Key": DEMO_CREDENTIALS["subscription_key"]}
TOKEN_FORM = {
    "grant_type": "personal_access_token",
    "client_id": DEMO_CREDENTIALS["client_id"],
    "client_secret": DEMO_CREDENTIALS["client_secret"],
    "personal_access_token": DEMO_CREDENTIALS["personal_access_token"],
    "scope": "merchant",
}
ORDERS = "/v4.1/merchant/orders"


@pytest.fixture(scope="module")
def sb() -> Iterator[BookerSandbox]:
    with BookerSandbox(SETTINGS) as sandbox:
        yield sandbox


def brand_token(sandbox: BookerSandbox) -> str:
    reply = requests.post(f"{sandbox.url}/v5/auth/connect/token", data=TOKEN_FORM, headers=KEY)
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]


def location_token(sandbox: BookerSandbox, location_id: int) -> str:
    reply = requests.post(f"{sandbox.url}/v5/auth/context/update",
                          params={"locationId": location_id}, headers=auth(brand_token(sandbox)))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return body if isinstance(body, str) else body["access_token"]


def auth(token: str) -> dict[str, str]:
    return {**KEY, "Authorization": f"Bearer {token}"}


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def find(sandbox: BookerSandbox, path: str, token: str, **body: object) -> requests.Response:
    return requests.post(f"{sandbox.url}{path}", json={"UsePaging": True, **body},
                         headers=auth(token), timeout=10)


def parse_iso(value: str):
    return read_date(value, EASTERN).instant


def parse_legacy(value: str, zone):
    return read_date(value, zone).instant


def day_window(day: date, offset: str) -> dict[str, str]:
    return {"FromDateCreatedOffset": f"{day}T00:00:00{offset}",
            "ToDateCreatedOffset": f"{day + timedelta(days=1)}T00:00:00{offset}"}


def read_all(sandbox: BookerSandbox, path: str, token: str, key: str = "Results",
             size: int = 100, **body: object) -> list[dict]:
    """A correct client: pages until the rows read reach TotalResultsCount."""
    rows: list[dict] = []
    for number in range(1, 1000):
        page = find(sandbox, path, token, PageNumber=number, PageSize=size, **body).json()
        rows += page[key]
        if not page[key] or len(rows) >= page["TotalResultsCount"]:
            return rows
    raise AssertionError("paging never ended")


# ----- authentication ---------------------------------------------------------------------


def test_token_success_is_a_brand_jwt(sb: BookerSandbox) -> None:
    reply = requests.post(f"{sb.url}/v5/auth/connect/token", data=TOKEN_FORM, headers=KEY)
    body = reply.json()
    assert reply.status_code == 200
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 1800, "merchant")
    payload = claims(body["access_token"])
    assert payload["exp"] - payload["iat"] == 1800
    assert payload["scope"] == "merchant" and payload["brand_id"] == 501
    assert "location_id" not in payload


@pytest.mark.parametrize(
    ("change", "status", "expected"),
    [
        ({"headers": {}}, 401, {"statusCode": 401}),
        ({"headers": {"Ocp-Apim-Subscription-Key": "nope"}}, 401, {"statusCode": 401}),
        ({"data": {**TOKEN_FORM, "client_id": "x"}}, 400, {"error": "invalid_client"}),
        ({"data": {**TOKEN_FORM, "client_secret": "x"}}, 400, {"error": "invalid_client"}),
        ({"data": {**TOKEN_FORM, "personal_access_token": "x"}}, 400, {"error": "invalid_grant"}),
        ({"data": {**TOKEN_FORM, "grant_type": "password"}}, 400,
         {"error": "unsupported_grant_type"}),
        ({"data": None, "json": TOKEN_FORM}, 400, {"error": "invalid_request"}),
    ],
)
def test_token_failures(sb: BookerSandbox, change: dict, status: int, expected: dict) -> None:
    call = {"data": TOKEN_FORM, "headers": KEY, **change}
    reply = requests.post(f"{sb.url}/v5/auth/connect/token", **call)
    assert reply.status_code == status
    assert expected.items() <= reply.json().items()
    if status == 401:
        assert reply.json()["message"].startswith("Access denied due to invalid subscription key")
    else:
        assert reply.json()["error_description"]


def test_context_update_replies_with_a_string_or_an_object(sb: BookerSandbox) -> None:
    reply = requests.post(f"{sb.url}/v5/auth/context/update?locationId=1003",
                          headers=auth(brand_token(sb)))
    assert isinstance(reply.json(), str)
    assert claims(reply.json())["location_id"] == 1003
    with BookerSandbox(SandboxSettings(now=NOW, context_reply="object")) as other:
        reply = requests.post(f"{other.url}/v5/auth/context/update?locationId=1002",
                              headers=auth(brand_token(other)))
        assert claims(reply.json()["access_token"])["location_id"] == 1002


def test_context_update_rejects_an_unknown_location(sb: BookerSandbox) -> None:
    reply = requests.post(f"{sb.url}/v5/auth/context/update?locationId=999",
                          headers=auth(brand_token(sb)))
    assert reply.status_code == 403
    assert reply.json()["IsSuccess"] is False
    assert reply.json()["ErrorMessage"] == "Location 999 is not visible to this token."


def test_location_context_and_token_checks(sb: BookerSandbox) -> None:
    token = location_token(sb, 1001)
    wrong = find(sb, ORDERS, token, LocationID=1002)
    assert wrong.status_code == 403 and wrong.json()["IsSuccess"] is False
    assert "Location 1002" in wrong.json()["ErrorMessage"]
    brand = find(sb, ORDERS, brand_token(sb), LocationID=1001)
    assert brand.status_code == 403 and "Location 1001" in brand.json()["ErrorMessage"]
    forged = find(sb, ORDERS, token[:-3] + "abc", LocationID=1001)
    assert forged.status_code == 401 and forged.json()["ErrorCode"] == 1000
    in_body = requests.post(f"{sb.url}{ORDERS}", headers=KEY, json={
        "LocationID": 1001, "access_token": token, **day_window(date(2025, 2, 3), "-05:00")})
    assert in_body.status_code == 200 and in_body.json()["IsSuccess"] is True
    in_query = requests.get(f"{sb.url}/v4.1/merchant/location/1001/schedule", headers=KEY,
                            params={"getDefaultDaySchedule": "true", "access_token": token})
    assert in_query.status_code == 200 and len(in_query.json()["LocationDaySchedules"]) == 7


def test_expired_token_is_refused() -> None:
    with BookerSandbox(SandboxSettings(now=NOW, token_lifetime_s=1)) as short:
        token = location_token(short, 1001)
        assert claims(token)["exp"] - claims(token)["iat"] == 1
        time.sleep(2.1)
        assert find(short, ORDERS, token, LocationID=1001).status_code == 401


@pytest.mark.parametrize(
    ("body", "argument"),
    [
        ({"LocationID": 1001, "PageNumber": 0}, "PageNumber"),
        ({"LocationID": 1001, "PageSize": "many"}, "PageSize"),
        ({"PageNumber": 1}, "LocationID"),
        ({"LocationID": 1001, "FromDateCreatedOffset": "yesterday"}, "FromDateCreatedOffset"),
        ({"LocationID": 1001, "ToDateCreatedOffset": "2025-03-01T00:00:00"}, "ToDateCreatedOffset"),
    ],
)
def test_bad_arguments_answer_400_with_argument_errors(
    sb: BookerSandbox, body: dict, argument: str
) -> None:
    reply = requests.post(f"{sb.url}{ORDERS}", json=body, headers=auth(location_token(sb, 1001)))
    assert reply.status_code == 400
    assert reply.json()["IsSuccess"] is False and reply.json()["ErrorCode"] == 200
    assert reply.json()["ArgumentErrors"][0]["ArgumentName"] == argument


def test_unknown_path_is_a_404_envelope(sb: BookerSandbox) -> None:
    reply = requests.get(f"{sb.url}/v4.1/merchant/nothing", headers=auth(brand_token(sb)))
    assert reply.status_code == 404
    assert reply.json()["IsSuccess"] is False and "/v4.1/merchant/nothing" in reply.json()[
        "ErrorMessage"]


# ----- paging and windows -----------------------------------------------------------------


def test_paging_clamps_and_pages_are_stable(sb: BookerSandbox) -> None:
    token = location_token(sb, 1002)
    window = {"LocationID": 1002, "FromDateCreatedOffset": "2025-03-01T00:00:00-06:00",
              "ToDateCreatedOffset": "2025-03-11T00:00:00-05:00"}  # DST starts inside
    first = find(sb, ORDERS, token, PageNumber=1, PageSize=1000, **window).json()
    expected = sb.dataset.orders_between(1002, parse_iso(window["FromDateCreatedOffset"]),
                                         parse_iso(window["ToDateCreatedOffset"]))
    assert first["TotalResultsCount"] == len(expected) > 150
    assert len(first["Results"]) == 100  # clamped to page_cap
    second = find(sb, ORDERS, token, PageNumber=2, PageSize=1000, **window).json()
    assert second["Results"][0]["ID"] > first["Results"][-1]["ID"]
    assert find(sb, ORDERS, token, PageNumber=2, PageSize=100, **window).json() == second
    rows = read_all(sb, ORDERS, token, size=100, **window)
    assert rows == expected
    assert [r["ID"] for r in rows] == sorted({r["ID"] for r in rows})
    beyond = find(sb, ORDERS, token, PageNumber=99, PageSize=100, **window).json()
    assert beyond["Results"] == [] and beyond["TotalResultsCount"] == len(expected)


def test_fault_page_cap_makes_every_page_short() -> None:
    with BookerSandbox(SandboxSettings(now=NOW, faults=FaultProfile(page_cap=37))) as capped:
        token = location_token(capped, 1001)
        window = {"LocationID": 1001, "FromDateCreatedOffset": "2025-04-01T00:00:00-04:00",
                  "ToDateCreatedOffset": "2025-04-08T00:00:00-04:00"}
        page = find(capped, ORDERS, token, PageNumber=1, PageSize=100, **window).json()
        assert len(page["Results"]) == 37 < page["TotalResultsCount"]
        rows = read_all(capped, ORDERS, token, **window)
        assert rows == capped.dataset.orders_between(
            1001, parse_iso(window["FromDateCreatedOffset"]),
            parse_iso(window["ToDateCreatedOffset"]))
        assert len(rows) > 100


def _midnight_order_day(sandbox: BookerSandbox, location_id: int) -> tuple[date, dict]:
    day = date(2025, 1, 2)
    while day < date(2025, 6, 1):
        for order in sandbox.dataset.orders(location_id, day):
            if order["DateCreatedOffset"].endswith("T00:00:00" + order["DateCreatedOffset"][-6:]):
                return day, order
        day += timedelta(days=1)
    raise AssertionError("no order stamped at local midnight")


def test_window_is_half_open_at_local_midnight(sb: BookerSandbox) -> None:
    token = location_token(sb, 1004)
    day, order = _midnight_order_day(sb, 1004)
    offset = order["DateCreatedOffset"][-6:]
    same_day = read_all(sb, ORDERS, token, LocationID=1004, **day_window(day, offset))
    compact = offset.replace(":", "")  # -0800 form
    previous = read_all(sb, ORDERS, token, LocationID=1004,
                        **day_window(day - timedelta(days=1), compact))
    assert order["ID"] in {r["ID"] for r in same_day}
    assert order["ID"] not in {r["ID"] for r in previous}
    assert same_day == sb.dataset.orders(1004, day)
    assert 20 <= len(same_day) <= 40


def test_legacy_and_iso_twins_name_the_same_instant(sb: BookerSandbox) -> None:
    zone = sb.dataset.zone(1002)
    for row in sb.dataset.orders(1002, date(2025, 2, 11)):
        assert parse_legacy(row["DateCreated"], zone) == parse_iso(row["DateCreatedOffset"])
    central = sb.dataset.location(1002)["TimeZone"]
    assert central["Name"] == "(GMT-06:00) Central Time (US & Canada)"
    assert central["StandardName"] == "Central Standard Time"


def test_dst_days_have_orders_and_christmas_and_closed_weekday_have_none(sb: BookerSandbox) -> None:
    token = location_token(sb, 1001)
    spring = read_all(sb, ORDERS, token, LocationID=1001, **{
        "FromDateCreatedOffset": "2025-03-09T00:00:00-05:00",
        "ToDateCreatedOffset": "2025-03-10T00:00:00-04:00"})
    assert spring == sb.dataset.orders(1001, date(2025, 3, 9))
    with BookerSandbox(SandboxSettings(start_date=date(2024, 12, 1), end_date=date(2024, 12, 31),
                                       now=NOW)) as winter:
        for location_id in winter.location_ids:
            assert winter.dataset.orders(location_id, date(2024, 12, 25)) == []
            closed = [d for d in (date(2024, 12, 1) + timedelta(days=i) for i in range(7))
                      if not winter.dataset.orders(location_id, d)]
            assert len(closed) == 1


# ----- data -------------------------------------------------------------------------------


def test_served_rows_equal_the_dataset(sb: BookerSandbox) -> None:
    token = location_token(sb, 1003)
    day = date(2025, 4, 15)
    window = {"FromDateLastModifiedOffset": f"{day}T00:00:00-07:00",
              "ToDateLastModifiedOffset": f"{day + timedelta(days=1)}T00:00:00-07:00"}
    customers = read_all(sb, "/v4.1/merchant/customers", token, key="Customers",
                         LocationID=1003, FilterByExactLocationID=True, CustomerRecordType=1,
                         **window)
    assert customers == sb.dataset.customers(1003, day)
    assert 8 <= len(customers) <= 15
    assert all(c["CustomerID"] == c["Customer"]["ID"] for c in customers)
    treatments = read_all(sb, "/v4.1/merchant/treatments", token, key="Treatments",
                          LocationID=1003)
    assert treatments == sb.dataset.treatments(1003) and len(treatments) == 25
    members = [c["CustomerID"] for c in customers
               if c["Customer"]["HasMembership"] or c["Customer"]["HasPastMembership"]]
    member = members[0]
    memberships = requests.get(f"{sb.url}/v4.1/merchant/customer/{member}/memberships",
                               params={"LocationID": 1003, "IncludeExpired": "true"},
                               headers=auth(token)).json()
    assert memberships["Results"] == sb.dataset.customer_memberships(1003, member, True)
    assert len(memberships["Results"]) >= 1
    notes = requests.get(f"{sb.url}/v4.1/merchant/customer/{member}/progress_notes",
                         params={"LocationID": 1003}, headers=auth(token)).json()
    assert notes["Results"] == sb.dataset.progress_notes(1003, member)
    stranger = requests.get(f"{sb.url}/v4.1/merchant/customer/10010001/progress_notes",
                            params={"LocationID": 1003}, headers=auth(token))
    assert stranger.status_code == 404


def test_employee_filters_and_membership_plans(sb: BookerSandbox) -> None:
    token = location_token(sb, 1001)

    def count(path: str, **flags: bool) -> int:
        return find(sb, path, token, LocationID=1001, **flags).json()["TotalResultsCount"]

    employees = "/v4.1/merchant/employees"
    assert count(employees) == 12
    assert count(employees, IgnoreFreelancers=True) == 10
    assert count(employees, OnlyIncludeActiveEmployees=True) == 10
    assert count(employees, IgnoreFreelancers=True, OnlyIncludeActiveEmployees=True) == 8
    assert count("/v4.1/merchant/memberships") == 4
    assert count("/v4.1/merchant/memberships", IncludeExpired=True) == 6
    assert count("/v4.1/merchant/rooms") == 5


def test_schedules(sb: BookerSandbox) -> None:
    token = location_token(sb, 1002)
    url = f"{sb.url}/v4.1/merchant/location/1002/schedule"
    week = requests.get(url, params={"getDefaultDaySchedule": "true"}, headers=auth(token)).json()
    rows = week["LocationDaySchedules"]
    assert [r["Weekday"] for r in rows][:2] == ["Monday", "Tuesday"] and len(rows) == 7
    assert sum(r["IsClosed"] for r in rows) == 1 and all("Date" not in r for r in rows)
    christmas_eve_ms = int(datetime(2025, 12, 24, 5, tzinfo=timezone.utc).timestamp() * 1000)
    dated = requests.get(url, params={"fromDate": f"/Date({christmas_eve_ms})/",
                                      "toDate": "2025-12-26"}, headers=auth(token)).json()
    days = {r["Date"]: r for r in dated["LocationDaySchedules"]}
    assert list(days) == ["2025-12-24", "2025-12-25", "2025-12-26"]
    assert days["2025-12-25"]["IsClosed"] is True and days["2025-12-25"]["StartTime"] is None
    employee = requests.get(f"{sb.url}/v4.1/merchant/employee/1002001/schedule", headers=auth(
        token), params={"LocationID": 1002, "fromDate": "2025-03-01", "toDate": "2025-03-07"})
    shifts = employee.json()["EmployeeDaySchedules"]
    assert len(shifts) == 7 and {r["EmployeeID"] for r in shifts} == {1002001}
    assert shifts == sb.dataset.employee_schedule(1002, 1002001, date(2025, 3, 1),
                                                  date(2025, 3, 7), False)
    assert all(r["StartTime"] is None or len(r["StartTime"]) == 8 for r in shifts)


def test_same_seed_same_rows_other_seed_other_rows(sb: BookerSandbox) -> None:
    day = date(2025, 5, 6)
    twin = BookerSandbox(SandboxSettings(start_date=date(2024, 1, 1), end_date=date(2025, 5, 31),
                                         now=NOW, location_count=6))
    other = BookerSandbox(SandboxSettings(seed=8, now=NOW))
    with twin, other:
        ours = read_all(sb, ORDERS, location_token(sb, 1001), LocationID=1001,
                        **day_window(day, "-04:00"))
        theirs = read_all(twin, ORDERS, location_token(twin, 1001), LocationID=1001,
                          **day_window(day, "-04:00"))
        assert ours == theirs and ours
        assert other.dataset.orders(1001, day) != ours
        assert other.dataset.customers(1001, day) != sb.dataset.customers(1001, day)


def test_nothing_exists_after_now_and_refunds_appear_later() -> None:
    early = BookerSandbox(SandboxSettings(now=datetime(2025, 3, 5, 18, tzinfo=timezone.utc)))
    late = BookerSandbox(SandboxSettings(now=NOW))
    day = date(2025, 3, 5)
    partial = early.dataset.orders(1001, day)
    assert all(parse_iso(o["DateCreatedOffset"]) <= early.settings.now for o in partial)
    assert len(partial) < len(late.dataset.orders(1001, day)) or not partial
    assert early.dataset.orders(1001, date(2025, 3, 6)) == []
    changed = 0
    for offset in range(1, 60):
        day = date(2025, 3, 5) - timedelta(days=offset)
        for before, after in zip(early.dataset.orders(1001, day), late.dataset.orders(1001, day),
                                 strict=True):
            assert before["ID"] == after["ID"]
            if before != after:
                changed += 1
                assert before["Refunds"] == [] and after["Refunds"]
    assert changed >= 1  # a refund dated after the early clock is not there yet


# ----- rate limit and faults --------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after() -> None:
    with BookerSandbox(SandboxSettings(now=NOW, rate_per_second=1.0, burst=3)) as limited:
        session = requests.Session()
        token = brand_token(limited)
        statuses = [session.post(f"{limited.url}/v4.1/merchant/locations", json={},
                                 headers=auth(token)) for _ in range(5)]
        codes = [r.status_code for r in statuses]
        assert codes == [200, 200, 429, 429, 429]  # the token call spent one of the burst
        assert int(statuses[-1].headers["Retry-After"]) >= 1
        assert limited.stats.throttled == 3
        assert sum(limited.stats.per_second.values()) == limited.stats.requests == 6
        assert limited.stats.by_route["POST /v4.1/merchant/locations"] == 5


def fault_sandbox(kind: str) -> BookerSandbox:
    profile = FaultProfile(rate=1.0, kinds=(kind,), timeout_sleep_s=0.5)
    return BookerSandbox(SandboxSettings(now=NOW, faults=profile))


@pytest.mark.parametrize("kind", TRANSIENT_KINDS + HARD_KINDS)
def test_each_fault_kind_is_observable(kind: str) -> None:
    with fault_sandbox(kind) as faulty:
        token = location_token(faulty, 1001)  # auth calls are never faulted by default
        body = {"LocationID": 1001, "UsePaging": True, "PageNumber": 1, "PageSize": 10}
        call = {"json": body, "headers": auth(token), "timeout": 5}
        url = f"{faulty.url}/v4.1/merchant/products"
        if kind == "connection_reset":
            with pytest.raises(requests.ConnectionError):
                requests.post(url, **call)
        elif kind == "read_timeout":
            with pytest.raises(requests.ReadTimeout):
                requests.post(url, **{**call, "timeout": 0.2})
        else:
            _check_fault_reply(kind, requests.post(url, **call))
        assert faulty.stats.faults[kind] == 1


def _check_fault_reply(kind: str, reply: requests.Response) -> None:
    if kind in ("http_429", "http_503", "http_504"):
        assert reply.status_code == int(kind[-3:])
        assert kind != "http_429" or int(reply.headers["Retry-After"]) >= 1
    elif kind == "empty_body":
        assert (reply.status_code, reply.json()) == (200, {})
    elif kind == "expired_token":
        assert reply.status_code in (200, 401) and reply.json()["ErrorCode"] == 1000
    elif kind == "html_body":
        assert reply.headers["Content-Type"].startswith("text/html")
        assert reply.text.startswith("<!DOCTYPE html>")
    elif kind == "truncated_json":
        assert int(reply.headers["Content-Length"]) == len(reply.content)
        with pytest.raises(ValueError):
            reply.json()
    elif kind == "wrong_shape":
        assert reply.json()["Results"] == 10
    else:  # lossy_page
        assert len(reply.json()["Results"]) == 9 and reply.json()["TotalResultsCount"] > 10


def test_auth_faults_only_when_asked() -> None:
    profile = FaultProfile(rate=1.0, kinds=("http_503",), auth_faults=True)
    with BookerSandbox(SandboxSettings(now=NOW, faults=profile)) as faulty:
        reply = requests.post(f"{faulty.url}/v5/auth/connect/token", data=TOKEN_FORM, headers=KEY)
        assert reply.status_code == 503


def test_reshaping_keeps_the_same_information() -> None:
    profile = FaultProfile(extra_fields=True, missing_optional=True, shuffle_keys=True)
    with BookerSandbox(SandboxSettings(now=NOW, faults=profile)) as odd:
        token = location_token(odd, 1002)
        rows = find(odd, ORDERS, token, LocationID=1002, **day_window(date(2025, 2, 11),
                                                                        "-06:00")).json()
    clean = odd.dataset.orders(1002, date(2025, 2, 11))
    assert len(rows["Results"]) == len(clean)
    zone = odd.dataset.zone(1002)
    for got, want in zip(rows["Results"], clean, strict=True):
        assert got["LoyaltyTier2027"] == "Gold"
        assert "DateCreatedOffset" not in got and "DateCompletedOffset" not in got
        assert parse_legacy(got["DateCreated"], zone) == parse_iso(want["DateCreatedOffset"])
        assert all(value is not None for value in got.values())
        assert got["Items"][0]["ID"] == want["Items"][0]["ID"]
    assert any(list(got) != list(want) for got, want in zip(rows["Results"], clean, strict=True))
    assert odd.stats.faults["shuffle_keys"] >= 1


def test_hostile_profile() -> None:
    hostile = FaultProfile.hostile()
    assert (hostile.page_cap, hostile.extra_fields, hostile.missing_optional) == (37, True, True)
    assert 0.1 <= hostile.rate <= 0.2 and set(hostile.kinds) == set(TRANSIENT_KINDS)
    with pytest.raises(ValueError):
        FaultProfile(kinds=("gremlins",))


# ----- start-up, embedded, CLI ------------------------------------------------------------


def test_two_year_span_starts_fast() -> None:
    started = time.perf_counter()
    with BookerSandbox(SandboxSettings(start_date=date(2023, 1, 1), end_date=date(2024, 12, 31))):
        assert time.perf_counter() - started < 0.5


def test_embedded_url_is_one_running_sandbox() -> None:
    url = embedded_url()
    assert url == embedded_url() and url.startswith("http://127.0.0.1:")
    reply = requests.post(f"{url}/v5/auth/connect/token", data=TOKEN_FORM, headers=KEY)
    assert reply.status_code == 200


def test_cli_help() -> None:
    done = subprocess.run([sys.executable, "-m", "booker_sandbox", "--help"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert "--faults" in done.stdout and "--latency-ms" in done.stdout


def test_cli_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "booker_sandbox", "--port", "0", "--seed", "3"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        exports: dict[str, str] = {}
        while "BOOKER_LOCATION_IDS" not in exports:
            line = process.stdout.readline()
            assert line, "the sandbox exited before printing its exports"
            if line.startswith("export "):
                name, value = line[len("export "):].strip().split("=", 1)
                exports[name] = value
        assert exports["BOOKER_LOCATION_IDS"] == "1001,1002,1003,1004"
        assert exports["BOOKER_CLIENT_ID"] == DEMO_CREDENTIALS["client_id"]
        reply = requests.post(f"{exports['BOOKER_BASE_URL']}/v5/auth/connect/token",
                              data=TOKEN_FORM, headers=KEY, timeout=5)
        assert reply.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
