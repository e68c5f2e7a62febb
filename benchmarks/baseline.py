"""A minimal Booker loader written from the contract alone (``docs/booker-api.md``): the pace
``make bench``'s single-run case compares a run of booker-assets with.

One thread, the standard library only, paced at ``rate`` requests a second (a token bucket of
``burst``, as the sandbox's). It asks what a run of booker-assets asks for the same days and
locations, the fewest requests the contract allows: the brand token; per location its record,
its token, a window per day of customers, orders and appointments (paged), each changed
customer's progress notes (and memberships when it has one) once, the employees and each one's
schedule over the window's months, the location's schedule, and, when a day of the window can
still be observed (today or yesterday, locally), the snapshot lists and the appointment book
ahead. It keeps every row in SQLite (as JSON): no typing, no checks, no Dagster. Its timeline
is when each request was sent.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

MERCHANT = "/v4.1/merchant"
PAGE_SIZE = 100
LOOKAHEAD_DAYS = 30  # the appointment book a daily load observes ahead of its day
ZONES = {  # a location's TimeZone.StandardName (Windows) → IANA (§4)
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "US Mountain Standard Time": "America/Phoenix",
    "Pacific Standard Time": "America/Los_Angeles",
    "Hawaiian Standard Time": "Pacific/Honolulu",
}
SNAPSHOTS = (("memberships", "Results", {"IncludeExpired": False}), ("products", "Results", {}),
             ("rooms", "Results", {}), ("treatments", "Treatments", {}))


@dataclass
class Pace:
    """A token bucket: ``rate`` a second, ``burst`` at once; the caller sleeps until due."""

    rate: float
    burst: float
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def wait(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate) - 1
        self.updated = now
        if self.tokens < 0:
            time.sleep(-self.tokens / self.rate)


@dataclass
class Booker:
    base_url: str
    subscription_key: str
    pace: Pace
    sent: list[float] = field(default_factory=list)  # time.time() of every request

    def call(self, method: str, path: str, *, token: str | None = None, query: dict | None = None,
             body: dict | None = None, form: dict | None = None) -> object:
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Ocp-Apim-Subscription-Key": self.subscription_key,
                   "Accept": "application/json"}
        data = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None or method == "POST":
            data = json.dumps(body or {}).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        while True:  # §3: 429 and 503/504 heal; Retry-After says when
            self.pace.wait()
            self.sent.append(time.time())
            try:
                with urllib.request.urlopen(request, timeout=30) as reply:
                    value = json.loads(reply.read())
                break
            except urllib.error.HTTPError as error:
                if error.code not in (429, 503, 504):
                    raise
                time.sleep(float(error.headers.get("Retry-After") or 1))
        if isinstance(value, dict) and value.get("IsSuccess") is False:
            raise RuntimeError(f"{method} {path}: {value.get('ErrorMessage')}")
        return value

    def find(self, path: str, key: str, token: str, body: dict) -> tuple[list[dict], int]:
        """Every row of a paged Find: pages until one is empty or the rows reach the count."""
        rows: list[dict] = []
        number = 1
        while True:
            page = self.call("POST", MERCHANT + path, token=token, body={
                **body, "UsePaging": True, "PageNumber": number, "PageSize": PAGE_SIZE})
            assert isinstance(page, dict)
            rows += page.get(key) or []
            total = page.get("TotalResultsCount")
            if not page.get(key) or total is None or len(rows) >= total:
                return rows, len(rows)
            number += 1


def load(base_url: str, credentials: dict[str, str], locations: list[int], first: date,
         last: date, now: datetime, rate: float, burst: int, database: str) -> list[float]:
    """Every report of ``locations`` over ``first``..``last`` into ``database``; the times
    its requests were sent."""
    booker = Booker(base_url, credentials["subscription_key"], Pace(rate, burst))
    brand = booker.call("POST", "/v5/auth/connect/token", form={
        "grant_type": "personal_access_token", "client_id": credentials["client_id"],
        "client_secret": credentials["client_secret"],
        "personal_access_token": credentials["personal_access_token"], "scope": "merchant"})
    assert isinstance(brand, dict)
    with sqlite3.connect(database) as db:
        db.execute("create table if not exists rows (report, location, day, record)")
        for location in locations:
            for report, day, rows in _location(booker, brand["access_token"], location, first,
                                               last, now):
                db.executemany("insert into rows values (?, ?, ?, ?)",
                               [(report, location, day, json.dumps(r)) for r in rows])
    return booker.sent


def _location(booker: Booker, brand: str, location: int, first: date, last: date,
              now: datetime):
    record = booker.call("GET", f"{MERCHANT}/location/{location}", token=brand)
    assert isinstance(record, dict)
    zone = ZoneInfo(ZONES[record["TimeZone"]["StandardName"]])
    context = booker.call("POST", f"/v5/auth/context/update?locationId={location}", token=brand)
    token = context if isinstance(context, str) else context["access_token"]
    at = {"LocationID": location}
    days = [first + timedelta(n) for n in range((last - first).days + 1)]
    changed: dict[int, dict] = {}
    for day in days:
        since = datetime.combine(day, datetime.min.time(), zone)
        until = datetime.combine(day + timedelta(1), datetime.min.time(), zone)
        window = {"FromDateLastModifiedOffset": since.isoformat(),
                  "ToDateLastModifiedOffset": until.isoformat()}
        customers, _ = booker.find("/customers", "Customers", token, {
            **at, **window, "FilterByExactLocationID": True, "CustomerRecordType": 1})
        changed |= {c["CustomerID"]: c["Customer"] for c in customers}
        yield "customers", day.isoformat(), customers
        orders, _ = booker.find("/orders", "Results", token, {
            **at, "FromDateCreatedOffset": since.isoformat(),
            "ToDateCreatedOffset": until.isoformat()})
        yield "orders", day.isoformat(), orders
        yield "appointments", day.isoformat(), _appointments(booker, token, at, since, until)
    for customer_id, customer in changed.items():
        if customer.get("HasMembership") or customer.get("HasPastMembership"):
            yield "customer_memberships", None, _get(
                booker, f"/customer/{customer_id}/memberships", token,
                {**at, "IncludeExpired": "false"}, "Results")
        yield "progress_notes", None, _get(booker, f"/customer/{customer_id}/progress_notes",
                                           token, at, "Results")
    months = {"fromDate": first.replace(day=1).isoformat(), "toDate": _month_end(last),
              "getDefaultDaySchedule": "false"}
    employees, _ = booker.find("/employees", "Results", token, at)
    for employee in employees:
        yield "employee_schedules", None, _get(booker, f"/employee/{employee['ID']}/schedule",
                                               token, {**at, **months}, "EmployeeDaySchedules")
    yield "location_schedules", None, _get(booker, f"/location/{location}/schedule", token,
                                           {**at, **months}, "LocationDaySchedules")
    today = now.astimezone(zone).date()
    observed = [day for day in days if timedelta(0) <= today - day <= timedelta(1)]
    for day in observed:  # the appointment book ahead of each observable day
        start = datetime.combine(day + timedelta(1), datetime.min.time(), zone)
        end = datetime.combine(day + timedelta(1 + LOOKAHEAD_DAYS), datetime.min.time(), zone)
        yield "appointment_book", day.isoformat(), _appointments(booker, token, at, start, end)
    if observed:
        yield "employees", today.isoformat(), employees
        for name, key, body in SNAPSHOTS:
            rows, _ = booker.find(f"/{name}", key, token, {**at, **body})
            yield name, today.isoformat(), rows


def _appointments(booker: Booker, token: str, at: dict, since: datetime,
                  until: datetime) -> list[dict]:
    """The appointments starting in ``[since, until)`` (§5)."""
    rows, _ = booker.find("/appointments", "Results", token, {
        **at, "FromStartDateOffset": since.isoformat(), "ToStartDateOffset": until.isoformat()})
    return rows


def _get(booker: Booker, path: str, token: str, query: dict, key: str) -> list[dict]:
    reply = booker.call("GET", MERCHANT + path, token=token, query=query)
    assert isinstance(reply, dict)
    return reply.get(key) or []


def _month_end(day: date) -> str:
    after = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return (after - timedelta(1)).isoformat()
