"""The sandbox's deterministic Booker dataset (docs/booker-api.md §6).

Every record derives from ``(seed, location, day)`` or ``(seed, location, entity)`` alone, so a
partition's rows never depend on the served span or on the clock; the clock (``now``) and
``end_date`` only hide what has not happened yet. Days are generated lazily and cached.
"""

from __future__ import annotations

import json
import random
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import TypeVar
from zoneinfo import ZoneInfo

from booker_assets.load.dates import day_window
from booker_assets.load.zones import zone_for
from booker_sandbox import appointments as ap
from booker_sandbox.records import cents, money, stamp

# Day numbers (for IDs) count from a fixed epoch, so IDs never depend on start_date.
_EPOCH = date(2000, 1, 1)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_USA = {"ID": 1, "Name": "United States"}
_TAX_PERCENT = 8.875
_PAYMENT_METHODS = ({"ID": 1, "Name": "Credit Card"}, {"ID": 2, "Name": "Cash"})
_T = TypeVar("_T")
BOOK_AHEAD_DAYS = 90  # how far ahead an open-ended appointments call reaches


@dataclass(frozen=True)
class _Site:
    name: str
    street: str
    city: str
    state: str
    zip: str
    zone_id: int
    zone_name: str
    standard_name: str


_SITES = (
    _Site("Café Lumière Spa & Salon", "210 W 14th St", "New York", "NY", "10011",
          35, "(GMT-05:00) Eastern Time (US & Canada)", "Eastern Standard Time"),
    _Site("O'Brien's Nails — Ōhana", "1550 N Damen Ave", "Chicago", "IL", "60622",
          20, "(GMT-06:00) Central Time (US & Canada)", "Central Standard Time"),
    _Site("Desert Bloom Day Spa", "4400 N Scottsdale Rd", "Phoenix", "AZ", "85016",
          15, "(GMT-07:00) Arizona", "US Mountain Standard Time"),
    _Site("Pacific Glow Studio", "8500 Melrose Ave", "Los Angeles", "CA", "90069",
          4, "(GMT-08:00) Pacific Time (US & Canada)", "Pacific Standard Time"),
    _Site("Altitude Wellness", "1600 Larimer St", "Denver", "CO", "80202",
          10, "(GMT-07:00) Mountain Time (US & Canada)", "Mountain Standard Time"),
    _Site("Hale Nani Spa", "2255 Kalākaua Ave", "Honolulu", "HI", "96815",
          2, "(GMT-10:00) Hawaii", "Hawaiian Standard Time"),
    _Site("Northern Lights Salon", "420 L St", "Anchorage", "AK", "99501",
          3, "(GMT-09:00) Alaska", "Alaskan Standard Time"),
)
_FIRST = ("Ana", "Zoë", "José", "Siobhán", "Ngozi", "Liam", "Mei", "Priya", "Olivia", "Mateo",
          "Chloé", "Noah", "Aiyana", "Björn", "Fatima", "Kenji", "Renée", "Diego", "Hana", "Sam")
_LAST = ("García", "O'Neil", "Nguyễn", "Müller", "Smith", "Johnson", "Kowalski", "Okafor",
         "Tanaka", "Brown", "Dubois", "Patel", "Kealoha", "Rossi", "Lee", "Martínez")
_GENDERS = ({"ID": 1, "Name": "Female"}, {"ID": 2, "Name": "Male"}, {"ID": 3, "Name": "Unknown"})
_TREATMENTS = (
    ("Swedish Massage", "Massage"), ("Deep Tissue Massage", "Massage"),
    ("Hot Stone Massage", "Massage"), ("Couples Massage", "Massage"),
    ("Prenatal Massage", "Massage"), ("Signature Facial", "Facial"), ("HydraFacial", "Facial"),
    ("Anti-Aging Facial", "Facial"), ("Acne Facial", "Facial"), ("Classic Manicure", "Nails"),
    ("Gel Manicure", "Nails"), ("Spa Pedicure", "Nails"), ("Gel Pedicure", "Nails"),
    ("Women's Haircut", "Hair"), ("Men's Haircut", "Hair"), ("Blowout", "Hair"),
    ("Balayage", "Hair"), ("Root Touch-Up", "Hair"), ("Keratin Treatment", "Hair"),
    ("Brow Wax", "Waxing"), ("Full Leg Wax", "Waxing"), ("Lash Lift", "Waxing"),
    ("Body Scrub", "Body"), ("Seaweed Wrap", "Body"), ("Sunrise Yoga", "Class"),
)
_CATEGORIES = ("Massage", "Facial", "Nails", "Hair", "Waxing", "Body", "Class")
_BRANDS = ("Aveda", "Dermalogica", "OPI", "Kérastase", "Bumble and bumble", "Eminence")
_PRODUCT_KINDS = ("Shampoo", "Conditioner", "Serum", "Cleanser", "Moisturizer", "Nail Polish",
                  "Hair Oil", "Body Lotion", "Mask", "Sunscreen")
_SIZES = ("Travel 50 ml", "Regular 150 ml", "Salon 500 ml")
_ROOMS = ("Lotus Room", "Zen Suite", "Couples Suite", "Nail Bar", "Hair Studio")
_PLANS = ("Glow Monthly", "Massage Club", "Nail Care Plus", "Hair Maintenance",
          "Founders 2019", "Summer Pass 2022")
_NOTES = ("Prefers unscented products.", "Allergic to nuts — avoid almond oil.",
          "Likes firm pressure; sensitive lower back.", "Asked about the \"VIP\" package.",
          "Running late policy explained.", "Gift card balance checked: $25 left.")


def _rng(*parts: object) -> random.Random:
    # str seeds hash with SHA-512, so streams are identical across runs and PYTHONHASHSEED.
    return random.Random(":".join(map(str, parts)))


def _out(value: list | dict, shared: bool) -> list | dict:
    """Callers get a copy unless they ask for the cached objects (``shared``: read-only)."""
    return value if shared else json.loads(json.dumps(value))


def _at(day: date, seconds: int, zone: ZoneInfo) -> datetime:
    """Local wall-clock moment ``seconds`` after midnight on ``day`` (DST-safe: built locally)."""
    return datetime.combine(day, time(seconds // 3600, seconds // 60 % 60, seconds % 60), zone)


def _later(moment: datetime, minutes: int) -> datetime:
    """Wall-clock arithmetic, as a till would stamp it (the offset follows the local date)."""
    return (moment.replace(tzinfo=None) + timedelta(minutes=minutes)).replace(tzinfo=moment.tzinfo)


def _past_moment(rng: random.Random, zone: ZoneInfo, first: date, span_days: int) -> datetime:
    return _at(first + timedelta(days=rng.randrange(span_days)), rng.randrange(9, 18) * 3600, zone)


def _phone(rng: random.Random) -> str:
    return f"555-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}"


def _site(location_id: int) -> _Site:
    return _SITES[(location_id - 1001) % len(_SITES)]


def _day_id_base(location_id: int, day: date) -> int:
    """Where the ids of one location-day's records start: 100 of them, unique to the pair."""
    return ((day - _EPOCH).days * 1000 + location_id - 1000) * 100


def _created_and_modified(created: datetime, rng: random.Random) -> dict:
    """DateCreated and a DateLastModified some minutes to months later."""
    return {**stamp("DateCreated", created),
            **stamp("DateLastModified", _later(created, rng.randrange(60, 400_000)))}


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


@dataclass(frozen=True)
class _Location:
    record: dict
    zone: ZoneInfo
    closed_weekday: int
    open_s: int
    close_s: int


@dataclass(frozen=True)
class _Order:
    created: datetime
    completed: datetime | None
    refunded: datetime | None
    record: dict
    appointment: ap.Appointment | None  # the visit its services were given in


class SandboxDataset:
    """Generator of every record the sandbox serves; public methods return exactly what it serves.

    ``clock`` is the server's "now": nothing dated after ``min(end of end_date, now)`` exists,
    and nothing before ``start_date``.
    """

    def __init__(
        self,
        seed: int,
        location_count: int,
        start_date: date,
        end_date: date | None,
        clock: Callable[[], datetime],
    ) -> None:
        if not 1 <= location_count <= 999:
            raise ValueError("location_count must be between 1 and 999")
        self.seed, self.start_date, self.end_date, self._clock = seed, start_date, end_date, clock
        self.location_ids = [1001 + i for i in range(location_count)]
        # Per-instance caches: a day is generated once, on first use.
        self._location = lru_cache(maxsize=None)(self._make_location)
        self._order_day = lru_cache(maxsize=32768)(self._make_orders)
        self._customer_day = lru_cache(maxsize=32768)(self._make_customer_day)
        self._base_customer = lru_cache(maxsize=65536)(self._make_base_customer)
        self._catalog = lru_cache(maxsize=None)(self._make_catalog)
        self._appointment_day = lru_cache(maxsize=32768)(self._make_appointments)
        self._week = lru_cache(maxsize=None)(self._employee_week)

    # ----- bounds -----------------------------------------------------------------------

    def cutoff(self, location_id: int) -> datetime:
        """The last instant that exists at a location: ``min(now, end of end_date)``."""
        now = self._clock()
        if self.end_date is None:
            return now
        _, end = day_window(self.end_date, self.zone(location_id))
        return min(now, end - timedelta(microseconds=1))

    def _days(
        self, location_id: int, start: datetime | None, end: datetime | None
    ) -> Iterator[date]:
        """The local days that may hold moments of ``[start, end)`` and exist at all."""
        zone, first = self.zone(location_id), self.start_date
        if start is not None:
            first = max(first, start.astimezone(zone).date())
        last = self.cutoff(location_id).astimezone(zone).date()
        if end is not None:
            last = min(last, (end - timedelta(microseconds=1)).astimezone(zone).date())
        for offset in range((last - first).days + 1):
            yield first + timedelta(days=offset)

    def _day_items(
        self,
        location_id: int,
        start: datetime | None,
        end: datetime | None,
        cutoff: datetime,
        day_items: Callable[[int, date], tuple[_T, ...]],
        moment: Callable[[_T], datetime],
    ) -> Iterator[_T]:
        """The items of the days of ``[start, end)`` whose moment is inside it, by ``cutoff``."""
        for day in self._days(location_id, start, end):
            for item in day_items(location_id, day):
                if _inside(moment(item), start, end) and moment(item) <= cutoff:
                    yield item

    # ----- locations ----------------------------------------------------------------------

    def locations(self, *, shared: bool = False) -> list[dict]:
        return _out([self._location(i).record for i in self.location_ids], shared)

    def location(self, location_id: int, *, shared: bool = False) -> dict:
        """The flat location record; ``KeyError`` for an unknown id."""
        return _out(self._known(location_id).record, shared)

    def zone(self, location_id: int) -> ZoneInfo:
        return self._known(location_id).zone

    def is_open(self, location_id: int, day: date) -> bool:
        """Closed one weekday a week and on Christmas Day."""
        closed = self._known(location_id).closed_weekday
        return day.weekday() != closed and (day.month, day.day) != (12, 25)

    def _known(self, location_id: int) -> _Location:
        if location_id not in self.location_ids:
            raise KeyError(location_id)
        return self._location(location_id)

    def _make_location(self, location_id: int) -> _Location:
        index = location_id - 1001
        site = _site(location_id)
        name = site.name if index < len(_SITES) else f"{site.name} #{index // len(_SITES) + 1}"
        rng = _rng(self.seed, "location", location_id)
        slug = _ascii(name)[:24]
        record = {
            "ID": location_id,
            "AccountName": slug,
            "BusinessName": name,
            "BusinessType": {"ID": 1, "Name": "Spa & Salon"},
            "EmailAddress": f"frontdesk@{slug}.example.com",
            "Address": {"Street1": site.street, "Street2": None, "City": site.city,
                        "State": site.state, "Zip": site.zip, "Country": _USA},
            "Phone": _phone(rng),
            "TimeZone": {"ID": site.zone_id, "Name": site.zone_name,
                         "StandardName": site.standard_name},
            "WebSite": f"https://{slug}.example.com",
            "CurrencyCode": "USD",
            "Status": 4,
            "BrandAccountName": "Lumière Collective",
        }
        zone = zone_for(record["TimeZone"])
        open_h, close_h = rng.choice((8, 9, 10)), rng.choice((19, 20, 21))
        return _Location(record, zone, rng.randrange(7), open_h * 3600, close_h * 3600)

    # ----- schedules -----------------------------------------------------------------------

    def location_schedule(
        self, location_id: int, from_date: date | None, to_date: date | None, defaults: bool
    ) -> list[dict]:
        """One row per weekday (``defaults``) or per date in ``[from_date, to_date]``."""
        loc = self._known(location_id)

        def hours(day: date | None, weekday: int) -> tuple[int, int] | None:
            closed = loc.closed_weekday == weekday or (
                day is not None and not self.is_open(location_id, day))
            return None if closed else (loc.open_s, loc.close_s)

        return _schedule_rows({"LocationID": location_id}, "IsClosed", hours,
                              _schedule_days(from_date, to_date, defaults))

    def employee_schedule(
        self,
        location_id: int,
        employee_id: int,
        from_date: date | None,
        to_date: date | None,
        defaults: bool,
    ) -> list[dict]:
        """An employee's week, or their days; ``KeyError`` when not employed at the location."""
        week = self._week(location_id, employee_id)

        def hours(day: date | None, weekday: int) -> tuple[int, int] | None:
            return week[weekday] if day is None else self.shift(location_id, employee_id, day)

        return _schedule_rows({"EmployeeID": employee_id, "LocationID": location_id}, "IsOff",
                              hours, _schedule_days(from_date, to_date, defaults))

    def shift(self, location_id: int, employee_id: int, day: date) -> tuple[int, int] | None:
        """The employee's hours on ``day`` (seconds after local midnight); None: off."""
        if (not self.is_open(location_id, day)
                or _rng(self.seed, "leave", employee_id, day).random() < 0.04):
            return None
        return self._week(location_id, employee_id)[day.weekday()]

    def _employee_week(self, location_id: int, employee_id: int) -> list[tuple[int, int] | None]:
        loc, employee = self._known(location_id), self._employee(location_id, employee_id)
        rng = _rng(self.seed, "week", employee["ID"])
        inactive = employee["Status"]["ID"] == 2
        extra_off = rng.choice([d for d in range(7) if d != loc.closed_weekday])
        start = loc.open_s + rng.choice((0, 3600))
        end = loc.close_s - rng.choice((0, 3600, 7200))
        return [None if inactive or d in (loc.closed_weekday, extra_off) else (start, end)
                for d in range(7)]

    # ----- catalog (static per location) ---------------------------------------------------

    def employees(
        self,
        location_id: int,
        ignore_freelancers: bool = False,
        only_active: bool = False,
        *,
        shared: bool = False,
    ) -> list[dict]:
        rows = self._catalog(location_id)["employees"]
        rows = [e for e in rows if not (ignore_freelancers and e["Type"] == 2)]
        rows = [e for e in rows if not (only_active and e["Status"]["ID"] == 2)]
        return _out(rows, shared)

    def memberships(
        self, location_id: int, include_expired: bool = False, *, shared: bool = False
    ) -> list[dict]:
        rows = self._catalog(location_id)["memberships"]
        return _out([m for m in rows if include_expired or not m["IsExpired"]], shared)

    def products(self, location_id: int, *, shared: bool = False) -> list[dict]:
        return _out(self._catalog(location_id)["products"], shared)

    def rooms(self, location_id: int, *, shared: bool = False) -> list[dict]:
        return _out(self._catalog(location_id)["rooms"], shared)

    def treatments(self, location_id: int, *, shared: bool = False) -> list[dict]:
        return _out(self._catalog(location_id)["treatments"], shared)

    def _employee(self, location_id: int, employee_id: int) -> dict:
        for employee in self._catalog(location_id)["employees"]:
            if employee["ID"] == employee_id:
                return employee
        raise KeyError(employee_id)

    def _make_catalog(self, location_id: int) -> dict:
        self._known(location_id)
        employees = [self._make_employee(location_id, k) for k in range(1, 13)]
        treatments = [self._make_treatment(location_id, k, employees) for k in range(1, 26)]
        rooms = [self._make_room(location_id, k, treatments) for k in range(1, 6)]
        for treatment in treatments:
            treatment["RoomIDs"] = [r["ID"] for r in rooms if treatment["ID"] in r["Treatments"]]
        count = _rng(self.seed, "products", location_id).randint(36, 44)
        return {
            "employees": employees,
            "staff": [e["ID"] for e in employees if e["Status"]["ID"] == 1],
            "treatments": treatments,
            "rooms": rooms,
            "memberships": [self._make_plan(location_id, k) for k in range(1, 7)],
            "products": [self._make_product(location_id, k) for k in range(1, count + 1)],
        }

    def _make_employee(self, location_id: int, k: int) -> dict:
        rng, zone = _rng(self.seed, "employee", location_id, k), self.zone(location_id)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        inactive = k in (9, 10)  # 2 inactive and 2 freelancers, at fixed positions
        return {
            "ID": location_id * 1000 + k,
            "LocationID": location_id,
            "FirstName": first,
            "LastName": last,
            "DisplayName": f"{first} {last[0]}.",
            "Email": f"{_ascii(first)}.{_ascii(last)}{k}@staff.example.com",
            "MobilePhone": _phone(rng),
            "Gender": rng.choice(_GENDERS),
            "Type": 2 if k in (11, 12) else 1,
            "Status": {"ID": 2, "Name": "Inactive"} if inactive else {"ID": 1, "Name": "Active"},
            **stamp("DateCreated", _past_moment(rng, zone, date(2018, 1, 1), 1800)),
        }

    def _make_treatment(self, location_id: int, k: int, employees: list[dict]) -> dict:
        rng, zone = _rng(self.seed, "treatment", location_id, k), self.zone(location_id)
        name, category = _TREATMENTS[k - 1]
        duration = rng.choice((30, 45, 60, 75, 90))
        created = _past_moment(rng, zone, date(2018, 6, 1), 1500)
        active = [e["ID"] for e in employees if e["Status"]["ID"] == 1]
        return {
            "ID": location_id * 1000 + 400 + k,
            "Name": name,
            "DisplayName": name if rng.random() < 0.7 else f"{name} ✦",
            "Description": f"{name}: {duration} minutes of {category.lower()} care.",
            "Category": {"ID": _CATEGORIES.index(category) + 1, "Name": category},
            "SubCategory": {"ID": k, "Name": f"{category} — {'Signature' if k % 2 else 'Classic'}"},
            "Price": money(rng.randrange(5, 44) * 500),
            "TreatmentDuration": duration,
            "TotalDuration": duration + rng.choice((0, 10, 15)),
            "IsActive": k != 25,
            "IsDeleted": False,
            "IsClass": category == "Class",
            "IsForCouples": name.startswith("Couples"),
            "AllowCustomersToBookOnline": rng.random() < 0.8,
            "EmployeeIDs": sorted(rng.sample(active, 3)),
            "RoomIDs": [],
            **_created_and_modified(created, rng),
        }

    def _make_room(self, location_id: int, k: int, treatments: list[dict]) -> dict:
        rng, zone = _rng(self.seed, "room", location_id, k), self.zone(location_id)
        created = _past_moment(rng, zone, date(2018, 1, 1), 1000)
        return {
            "ID": location_id * 1000 + 300 + k,
            "LocationID": location_id,
            "Name": _ROOMS[k - 1],
            "Description": None if k == 4 else f"{_ROOMS[k - 1]}, quiet side of the building",
            "Capacity": 2 if k == 3 else 1,
            "Type": 2 if k == 3 else 1,
            "Treatments": sorted(rng.sample([t["ID"] for t in treatments], 6)),
            **_created_and_modified(created, rng),
        }

    def _make_plan(self, location_id: int, k: int) -> dict:
        rng, zone = _rng(self.seed, "plan", location_id, k), self.zone(location_id)
        expired = k >= 5  # the last two plans ended in the past
        start = _past_moment(rng, zone, date(2019, 1, 1) if expired else date(2020, 1, 1), 700)
        ends = _later(start, 365 * 24 * 60) if expired else None
        levels = [{
            "ID": location_id * 10_000 + k * 10 + n,
            "LevelName": ("Silver", "Gold", "Platinum")[n - 1],
            "Fee": money(rng.randrange(6, 30) * 500),
            "PaymentFrequencyType": {"ID": 1, "Name": "Monthly"},
            "SignupFee": money(rng.choice((0, 2500, 5000))),
        } for n in range(1, rng.randint(1, 3) + 1)]
        return {
            "ID": location_id * 1000 + 100 + k,
            "Name": _PLANS[k - 1],
            "Description": f"{_PLANS[k - 1]} — members save on every visit.",
            "Levels": levels,
            "Status": {"ID": 2, "Name": "Expired"} if expired else {"ID": 1, "Name": "Active"},
            **stamp("StartDate", start),
            **stamp("ExpirationDate", ends),
            "IsExpired": expired,
        }

    def _make_product(self, location_id: int, k: int) -> dict:
        rng = _rng(self.seed, "product", location_id, k)
        brand, kind = rng.choice(_BRANDS), _PRODUCT_KINDS[k % len(_PRODUCT_KINDS)]
        product_id = location_id * 1000 + 200 + k
        variants = []
        for n in range(1, rng.randint(1, 3) + 1):
            price = rng.randrange(7, 89) * 100 + 99
            variants.append({
                "ID": product_id * 10 + n,
                "Name": _SIZES[n - 1],
                "SKU": f"{_ascii(brand)[:4].upper()}-{product_id}-{n}",
                "Barcode": f"0{rng.randrange(10**11, 10**12)}",
                "Price": money(price),
                "Cost": money(price * rng.randrange(35, 60) // 100),
                "RetailInventory": rng.randrange(0, 60),
                "BackbarInventory": rng.randrange(0, 12),
            })
        return {
            "ID": product_id,
            "Name": f"{brand} {kind} No. {k}",
            "Description": None if k % 7 == 0 else f"{kind} by {brand}.",
            "Brand": brand,
            "Category": {"ID": k % len(_PRODUCT_KINDS) + 1, "Name": kind},
            "IsActive": k % 13 != 0,
            "ProductVariants": variants,
        }

    # ----- customers -----------------------------------------------------------------------

    def customers(self, location_id: int, day: date, *, shared: bool = False) -> list[dict]:
        """``{CustomerID, Customer}`` rows modified on the local ``day``, as served."""
        start, end = day_window(day, self.zone(location_id))
        return self.customers_between(location_id, start, end, shared=shared)

    def customers_between(self, location_id: int, start: datetime | None, end: datetime | None,
                                 *, shared: bool = False) -> list[dict]:
        """Customers last modified in ``[start, end)``, each as of its latest such change."""
        cutoff, latest = self.cutoff(location_id), {}
        for _, row in self._day_items(location_id, start, end, cutoff, self._customer_day,
                                      lambda change: change[0]):
            latest[row["CustomerID"]] = row  # days ascend: the later version wins
        return _out([latest[k] for k in sorted(latest)], shared)

    def customer_memberships(
        self, location_id: int, customer_id: int, include_expired: bool = False, *,
        shared: bool = False,
    ) -> list[dict]:
        """``KeyError`` when the customer does not belong to the location."""
        base = self._customer(location_id, customer_id)
        rows = [self._customer_membership(location_id, base, expired)
                for expired, held in ((False, base["active"]), (True, base["past"])) if held]
        return _out([r for r in rows if include_expired or not r["IsExpired"]], shared)

    def progress_notes(
        self, location_id: int, customer_id: int, *, shared: bool = False
    ) -> list[dict]:
        base = self._customer(location_id, customer_id)
        rng, zone = _rng(self.seed, "progress", customer_id), self.zone(location_id)
        staff = [e["ID"] for e in self.employees(location_id, only_active=True, shared=True)]
        return _out([{
            "ID": customer_id * 10 + n,
            "CustomerID": customer_id,
            "AppointmentID": rng.randrange(10**8, 10**9),
            "EmployeeID": rng.choice(staff),
            "Text": rng.choice(_NOTES),
            **stamp("DateCreated", _past_moment(rng, zone, date(2023, 1, 1), 700)),
        } for n in range(1, base["progress_notes"] + 1)], shared)

    def _customer(self, location_id: int, customer_id: int) -> dict:
        k = customer_id - location_id * 10_000
        if not 1 <= k <= self._pool_size(location_id):
            raise KeyError(customer_id)
        return self._base_customer(location_id, k)

    def _pool_size(self, location_id: int) -> int:
        self._known(location_id)
        return _rng(self.seed, "pool", location_id).randint(380, 420)

    def _make_base_customer(self, location_id: int, k: int) -> dict:
        rng, zone = _rng(self.seed, "customer", location_id, k), self.zone(location_id)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        born = date(1950, 1, 1) + timedelta(days=rng.randrange(18_000))
        membership = rng.random()
        return {
            "ID": location_id * 10_000 + k,
            "GUID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "FirstName": first,
            "LastName": last,
            "Email": f"{_ascii(first)}.{_ascii(last)}.{k}@mail.example.com",
            "HomePhone": None if rng.random() < 0.6 else f"555-{rng.randrange(100, 999)}-0{k:03d}",
            "CellPhone": _phone(rng),
            "Address": {"Street1": f"{rng.randrange(1, 9999)} {rng.choice(_LAST)} St",
                        "Street2": None if rng.random() < 0.8 else f"Apt {rng.randrange(1, 40)}",
                        "City": _site(location_id).city, "State": _site(location_id).state,
                        "Zip": f"{rng.randrange(10000, 99999)}", "Country": _USA},
            "DateOfBirth": None if rng.random() < 0.2 else _at(born, 0, zone),
            "Gender": rng.choice(_GENDERS),
            "created": _past_moment(rng, zone, date(2016, 1, 1), 1400),
            "first_visit": _past_moment(rng, zone, date(2020, 1, 1), 1400),
            "active": membership < 0.2,  # ~30% have or had a membership
            "past": 0.1 < membership < 0.3,
            "progress_notes": rng.randint(0, 3),
            "AllowReceiveEmails": rng.random() < 0.7,
            "AllowReceiveSMS": rng.random() < 0.5,
        }

    def _customer_membership(self, location_id: int, base: dict, expired: bool) -> dict:
        rng, zone = _rng(self.seed, "cm", base["ID"], expired), self.zone(location_id)
        plans = self._catalog(location_id)["memberships"]
        plan = rng.choice(plans if expired else [p for p in plans if not p["IsExpired"]])
        level = rng.choice(plan["Levels"])
        start = _past_moment(rng, zone, date(2019, 6, 1) if expired else date(2022, 1, 1), 700)
        ends = _later(start, 365 * 24 * 60) if expired else None
        next_charge = None if expired else _at(date(2030, 1, start.day), 0, zone)
        return {
            "CustomerMembershipID": base["ID"] * 10 + (2 if expired else 1),
            "CustomerID": base["ID"],
            "MembershipID": plan["ID"],
            "MembershipName": plan["Name"],
            "LevelName": level["LevelName"],
            "Status": {"ID": 3, "Name": "Expired"} if expired else {"ID": 1, "Name": "Active"},
            **stamp("StartDate", start),
            **stamp("MembershipExpirationDate", ends),
            **stamp("NextChargeDate", next_charge),
            "PaymentFrequencyType": level["PaymentFrequencyType"],
            "HasAutopay": not expired and rng.random() < 0.8,
            "SignupFee": level["SignupFee"],
            "TotalFee": money(cents(level["Fee"]) + cents(level["SignupFee"])),
            "IsExpired": expired,
        }

    def _make_customer_day(self, location_id: int, day: date) -> tuple[tuple[datetime, dict], ...]:
        rng, zone = _rng(self.seed, "customers", location_id, day), self.zone(location_id)
        picks = rng.sample(range(1, self._pool_size(location_id) + 1), rng.randint(8, 15))
        seconds = sorted(rng.randrange(7 * 3600, 22 * 3600) for _ in picks)
        if rng.random() < 0.2:  # a window edge: a change stamped exactly at local midnight
            seconds[0] = 0
        rows = []
        for slot, (k, second) in enumerate(zip(picks, seconds, strict=True)):
            modified = _at(day, second, zone)
            note_base = _day_id_base(location_id, day) + slot * 4
            row = self._customer_as_of(location_id, k, modified, rng, note_base)
            rows.append((modified, {"CustomerID": row["ID"], "Customer": row}))
        return tuple(rows)

    def _customer_as_of(
        self, location_id: int, k: int, modified: datetime, rng: random.Random, note_base: int
    ) -> dict:
        base = self._base_customer(location_id, k)
        notes = []
        for n in range(rng.randint(0, 3)):
            written = _later(modified, -rng.randrange(0, modified.hour * 60 + modified.minute + 1))
            notes.append({"ID": note_base + n, **stamp("DateCreated", written),
                          "Text": rng.choice(_NOTES), "CreatedByUser": rng.choice(_FIRST)})
        service, retail = rng.randrange(0, 500_000), rng.randrange(0, 120_000)
        public = {key: value for key, value in base.items() if key[0].isupper()}
        return {
            **public,
            **stamp("DateOfBirth", base["DateOfBirth"]),
            "LocationID": location_id,
            "IsActive": True,
            "CustomerRecordType": {"ID": 1, "Name": "Customer"},
            "LoyaltyPoints": rng.randrange(0, 2000),
            "HasMembership": base["active"],
            "HasActiveMembership": base["active"],
            "HasPastMembership": base["past"],
            "Notes": notes,
            "CustomerStats": {
                **stamp("DateOfFirstVisit", min(base["first_visit"], modified)),
                **stamp("DateOfLastVisit", modified),
                "TotalServiceSales": money(service),
                "TotalRetailSales": money(retail),
                "TotalSales": money(service + retail),
            },
            **stamp("DateCreated", min(base["created"], modified)),
            **stamp("DateLastModified", modified),
        }

    # ----- orders --------------------------------------------------------------------------

    def orders(self, location_id: int, day: date, *, shared: bool = False) -> list[dict]:
        """Orders created on the local ``day``, as of the server's clock, sorted by ID."""
        start, end = day_window(day, self.zone(location_id))
        return self.orders_between(location_id, start, end, shared=shared)

    def orders_between(self, location_id: int, start: datetime | None, end: datetime | None,
                              *, shared: bool = False) -> list[dict]:
        """Orders created in ``[start, end)`` (either bound may be open), sorted by ID."""
        cutoff = self.cutoff(location_id)
        orders = self._day_items(location_id, start, end, cutoff, self._order_day,
                                 lambda order: order.created)
        return _out([_order_as_of(order, cutoff) for order in orders], shared)

    def _make_orders(self, location_id: int, day: date) -> tuple[_Order, ...]:
        if not self.is_open(location_id, day):
            return ()
        loc, rng = self._known(location_id), _rng(self.seed, "orders", location_id, day)
        seconds = [rng.randrange(loc.open_s, loc.close_s) for _ in range(rng.randint(20, 40))]
        if rng.random() < 0.2:  # window edge: an order stamped exactly 00:00:00 local
            seconds[0] = 0
        if rng.random() < 0.2:  # two orders sharing one timestamp
            seconds[1] = seconds[2]
        return tuple(
            self._make_order(location_id, day, n, _day_id_base(location_id, day) + n,
                             _at(day, second, loc.zone), rng)
            for n, second in enumerate(sorted(seconds), start=1)
        )

    def _make_order(
        self, location_id: int, day: date, n: int, order_id: int, created: datetime,
        rng: random.Random,
    ) -> _Order:
        voided = rng.random() < 0.02
        completed = None if voided else _later(created, rng.randrange(5, 60))
        customer = None if rng.random() < 0.05 else location_id * 10_000 + rng.randint(
            1, self._pool_size(location_id))
        created_stamp = stamp("DateCreated", created)
        items = [self._make_item(location_id, order_id * 10 + k, order_id, created_stamp, rng)
                 for k in range(1, rng.randint(1, 4) + 1)]
        appointment = self._visit(location_id, day, n, order_id, created, customer, items)
        subtotal = sum(i["_total"] for i in items)
        discount = sum(cents(i["DynamicPrice"]["Discount"]) * i["Quantity"] for i in items)
        retail = sum(i["_total"] for i in items if i["IsRetail"])
        services = sum(i["_total"] for i in items if i["IsService"])
        taxes = round(retail * _TAX_PERCENT / 100)
        tip = services * rng.choice((15, 18, 20)) // 100 if rng.random() < 0.7 else 0
        refund, refunded = None, None
        if completed is not None and rng.random() < 0.05:
            refunded = _later(completed, rng.randrange(0, 11) * 1440 + rng.randrange(10, 120))
            refund = self._make_refund(order_id, rng.choice(items), refunded, rng)
        for item in items:
            item["Refunds"] = [refund] if refund and refund["OrderItemID"] == item["ID"] else []
            del item["_total"]
        last = max(m for m in (created, completed, refunded) if m is not None)
        record = {
            "ID": order_id,
            "OrderNumber": int(f"{day:%y%m%d}{n:03d}"),
            "LocationID": location_id,
            "CustomerID": customer,
            "Status": {"ID": 3, "Name": "Voided"} if voided else {"ID": 2, "Name": "Completed"},
            "IsCompleted": not voided,
            "IsDeleted": voided,
            **created_stamp,
            **stamp("DateCompleted", completed),
            **stamp("DatePaid", completed),
            **stamp("DateLastModified", last),
            "SubTotal": money(subtotal),
            "Discount": money(discount),
            "TotalTaxes": money(taxes),
            "TotalTip": money(tip),
            "FinalTotal": money(subtotal + taxes + tip),
            "RefundsAmount": refund["Amount"] if refund else money(0),
            "Items": items,
            "Refunds": [refund] if refund else [],
        }
        return _Order(created, completed, refunded, record, appointment)

    def _make_item(
        self, location_id: int, item_id: int, order_id: int, created: dict, rng: random.Random
    ) -> dict:
        catalog, roll = self._catalog(location_id), rng.random()
        quantity, appointment = 1, None
        if roll < 0.65:
            treatment = rng.choice(catalog["treatments"][:24])
            kind, billable = {"ID": 1, "Name": "Service"}, treatment["ID"]
            name, sku, price = treatment["Name"], None, cents(treatment["Price"])
            appointment = item_id
        elif roll < 0.95:
            variant = rng.choice(rng.choice(catalog["products"])["ProductVariants"])
            kind, billable = {"ID": 2, "Name": "Product"}, variant["ID"]
            name, sku, price = variant["Name"], variant["SKU"], cents(variant["Price"])
            quantity = rng.randint(1, 3)
        else:
            kind, billable, name, sku = {"ID": 3, "Name": "GiftCard"}, None, "Gift Card", None
            price = rng.choice((2500, 5000, 10000))
        discount = price * rng.choice((10, 20)) // 100 if rng.random() < 0.15 else 0
        return {
            "ID": item_id,
            "OrderID": order_id,
            **created,
            "Type": kind,
            "BillableItemID": billable,
            "BillableItem": {"Name": name, "SKU": sku, "Price": money(price)},
            "Quantity": quantity,
            "UnitPrice": money(price),
            "DynamicPrice": {"OriginalPrice": money(price), "Discount": money(discount),
                             "FinalPrice": money(price - discount)},
            "IsService": kind["ID"] == 1,
            "IsRetail": kind["ID"] == 2,
            "IsGiftCard": kind["ID"] == 3,
            "EmployeeID": rng.choice(catalog["staff"]) if kind["ID"] != 3 else None,
            "AppointmentID": appointment,
            "CustomerMembershipID": None,
            "_total": (price - discount) * quantity,
        }

    @staticmethod
    def _make_refund(order_id: int, item: dict, when: datetime, rng: random.Random) -> dict:
        full = item["_total"]
        amount = full if rng.random() < 0.6 else full // 2
        return {
            "OrderID": order_id,
            "OrderItemID": item["ID"],
            "Amount": money(amount),
            "PaymentMethod": rng.choice(_PAYMENT_METHODS),
            "Type": {"ID": 1, "Name": "Refund"},
            "TotalTax": money(round(amount * _TAX_PERCENT / 100) if item["IsRetail"] else 0),
            "Notes": rng.choice((None, "Client unhappy with result", "Double charge")),
            **stamp("DateCreated", when),
        }

    # ----- appointments ----------------------------------------------------------------------

    def appointments_between(self, location_id: int, start: datetime | None,
                             end: datetime | None, *, shared: bool = False) -> list[dict]:
        """Appointments starting in ``[start, end)`` that are booked by the server's clock, as
        they stand then, sorted by ID. The book runs ahead of today: an open ``end`` stops
        ``BOOK_AHEAD_DAYS`` after it."""
        zone, cutoff = self.zone(location_id), self.cutoff(location_id)
        first = max(self.start_date, start.astimezone(zone).date() if start else self.start_date)
        last = ((end - timedelta(microseconds=1)).astimezone(zone).date() if end else
                cutoff.astimezone(zone).date() + timedelta(days=BOOK_AHEAD_DAYS))
        rows = [ap.as_of(a, cutoff)
                for offset in range((last - first).days + 1)
                for a in self._appointment_day(location_id, first + timedelta(days=offset))
                if _inside(a.start, start, end) and ap.visible(a, cutoff)]
        return _out(rows, shared)

    def _make_appointments(self, location_id: int, day: date) -> tuple[ap.Appointment, ...]:
        """The day's visits (one per order with services) and the cancelled and no-show
        appointments that never became an order, sorted by ID."""
        visits = [o.appointment for o in self._order_day(location_id, day) if o.appointment]
        if not visits:
            return ()
        rng, loc = _rng(self.seed, "appointments", location_id, day), self._known(location_id)
        missed = []
        for j in range(rng.randint(3, 7)):
            line = self._free_line(location_id, day, rng, _day_id_base(location_id, day) * 10
                                   + 500 + j)
            if line is None:
                continue
            booking = ap.draw_booking(rng, line.start, loc.open_s, loc.close_s)
            booking = replace(booking, at=min(booking.at, _later(line.start, -60)))
            no_show = j % 3 == 0  # the rest are cancelled, some time after booking
            gone = booking.at + (line.start - booking.at) * rng.random()
            missed.append(ap.Appointment(
                id=line.id // 10, number=int(f"{day:%y%m%d}{500 + j:03d}"),
                location_id=location_id, customer_id=self._random_customer(location_id, rng),
                lines=(line,), booking=booking,
                cancelled=None if no_show else gone,
                no_show=ap.next_morning(line.start, loc.open_s, rng) if no_show else None,
                notes=ap.notes(rng)))
        return tuple(sorted(visits + missed, key=lambda a: a.id))

    def _visit(self, location_id: int, day: date, n: int, order_id: int, created: datetime,
               customer: int | None, items: list[dict]) -> ap.Appointment | None:
        """The appointment an order's services were given in: the lines one after another,
        ending by checkout (the order's creation; never before the location opens). Each
        line's employee works then (the item's own if so) and its room offers the treatment;
        the items carry the appointment's id and the line's employee."""
        services = [i for i in items if i["IsService"]]
        if not services:
            return None
        rng, loc = _rng(self.seed, "visit", order_id), self._known(location_id)
        treatments = {t["ID"]: t for t in self._catalog(location_id)["treatments"]}
        total = sum(treatments[i["BillableItemID"]]["TreatmentDuration"] for i in services)
        checkout = created.hour * 3600 + created.minute * 60 + created.second
        begin = max(loc.open_s, (checkout - total * 60 - rng.randrange(0, 600)) // 300 * 300)
        appointment_id, lines = services[0]["ID"], []
        for index, item in enumerate(services, start=1):
            treatment = treatments[item["BillableItemID"]]
            end = begin + treatment["TreatmentDuration"] * 60
            employee = self._working(location_id, day, (item["EmployeeID"],
                                     *treatment["EmployeeIDs"]), begin, end)
            item.update(EmployeeID=employee, AppointmentID=appointment_id)
            lines.append(ap.Line(
                id=appointment_id * 10 + index, treatment=treatment, employee_id=employee,
                requested=rng.random() < 0.3, room=self._room_for(location_id, treatment, index),
                start=_at(day, begin, loc.zone), end=_at(day, end, loc.zone),
                final_cents=cents(item["DynamicPrice"]["FinalPrice"])))
            begin = end
        start = lines[0].start
        booking = ap.draw_booking(rng, start, loc.open_s, loc.close_s)
        return ap.Appointment(
            id=appointment_id, number=int(f"{day:%y%m%d}{n:03d}"), location_id=location_id,
            customer_id=customer, lines=tuple(lines), booking=booking,
            checked_in=_later(start, -rng.randrange(0, 10)),
            completed=max(created, lines[-1].end), order_id=order_id, notes=ap.notes(rng))

    def _free_line(self, location_id: int, day: date, rng: random.Random,
                   line_id: int) -> ap.Line | None:
        """A one-treatment appointment inside the shift of an employee who gives it (None:
        nobody who gives it works that day)."""
        treatment = rng.choice(self._catalog(location_id)["treatments"][:24])
        for employee in treatment["EmployeeIDs"]:
            hours = self.shift(location_id, employee, day)
            minutes = treatment["TreatmentDuration"]
            if hours and hours[1] - hours[0] >= minutes * 60:
                begin = hours[0] + rng.randrange(0, hours[1] - hours[0] - minutes * 60 + 1,
                                                 300)
                zone = self.zone(location_id)
                return ap.Line(line_id * 10 + 1, treatment, employee, rng.random() < 0.3,
                               self._room_for(location_id, treatment, line_id),
                               _at(day, begin, zone), _at(day, begin + minutes * 60, zone),
                               cents(treatment["Price"]))
        return None

    def _working(self, location_id: int, day: date, preferred: tuple[int, ...], begin: int,
                 end: int) -> int:
        """The first of ``preferred``, then of the staff, whose shift holds ``[begin, end)``;
        else the first who works that day at all; else the item's own employee."""
        staff = (*preferred, *self._catalog(location_id)["staff"])
        shifts = [(e, self.shift(location_id, e, day)) for e in dict.fromkeys(staff)]
        for employee, hours in shifts:
            if hours and hours[0] <= begin and end <= hours[1]:
                return employee
        return next((e for e, hours in shifts if hours), preferred[0])

    def _room_for(self, location_id: int, treatment: dict, index: int) -> dict | None:
        rooms = {r["ID"]: r for r in self._catalog(location_id)["rooms"]}
        offered = treatment["RoomIDs"]
        return rooms[offered[index % len(offered)]] if offered else None

    def _random_customer(self, location_id: int, rng: random.Random) -> int:
        return location_id * 10_000 + rng.randint(1, self._pool_size(location_id))


def _inside(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or moment >= start) and (end is None or moment < end)


def _order_as_of(order: _Order, cutoff: datetime) -> dict:
    """The order as it stood at ``cutoff``: not yet paid, or not yet refunded."""
    completed = order.completed if order.completed and order.completed <= cutoff else None
    refunded = order.refunded if order.refunded and order.refunded <= cutoff else None
    if completed == order.completed and refunded == order.refunded:
        return order.record
    record = dict(order.record)  # shallow: the cached record stays untouched
    if order.refunded and refunded is None:
        record.update(Refunds=[], RefundsAmount=money(0),
                      Items=[{**item, "Refunds": []} for item in record["Items"]])
    if order.completed and completed is None:
        record.update(Status={"ID": 1, "Name": "Open"}, IsCompleted=False,
                      **stamp("DateCompleted", None), **stamp("DatePaid", None))
    last = max(m for m in (order.created, completed, refunded) if m is not None)
    record.update(stamp("DateLastModified", last))
    return record


def _schedule_days(
    from_date: date | None, to_date: date | None, defaults: bool
) -> list[tuple[date | None, int]]:
    """``(date or None, weekday)`` pairs: the 7 weekdays, or each date of the inclusive span."""
    if defaults:
        return [(None, weekday) for weekday in range(7)]
    if from_date is None or to_date is None:
        raise ValueError("fromDate and toDate are required unless getDefaultDaySchedule is true")
    span = (to_date - from_date).days + 1
    return [(from_date + timedelta(days=i), (from_date + timedelta(days=i)).weekday())
            for i in range(span)]


def _schedule_rows(
    ids: dict,
    off_field: str,
    hours_of: Callable[[date | None, int], tuple[int, int] | None],
    days: list[tuple[date | None, int]],
) -> list[dict]:
    """A schedule's rows: ``ids``, the date (if any), the hours and ``off_field`` (no hours)."""

    def clock(seconds: int) -> str:
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:00"

    rows = []
    for day, weekday in days:
        hours = hours_of(day, weekday)
        row = dict(ids)
        if day is not None:
            row["Date"] = day.isoformat()
        row["Weekday"] = _WEEKDAYS[weekday]
        row["StartTime"] = clock(hours[0]) if hours else None
        row["EndTime"] = clock(hours[1]) if hours else None
        row[off_field] = hours is None
        rows.append(row)
    return rows
