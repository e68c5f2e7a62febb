"""The report catalogue: every Booker report as data, read by one extractor and one asset factory.

A ``ReportGroup`` is one fetch (its ``root``) and the tables derived from it, so ``orders_items``
and ``orders_refunds`` come from the same orders pages as ``orders``, and notes and customer
memberships from the same customers. Paths, results keys and field names tagged [chosen] in
docs/booker-api.md live only here, so a real account that says otherwise is a one-line change;
adding a report is one ``ReportGroup`` entry and nothing else.

How a partition day reaches Booker is one of four ``Days`` kinds: an ISO window per day
(``IsoWindow``), the days ahead of an observed day (``AheadWindow``: the appointment book),
the slice's dates (``DateRange``, rows carry their own date), or nothing (a snapshot: Booker
returns today's list and keeps no history of it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from booker_assets.catalogue import schema as s
from booker_assets.catalogue.options import OPTIONS
from booker_assets.catalogue.schema import Record

MERCHANT = "/v4.1/merchant"
LOCATION_COLUMN = "location_id"


@dataclass(frozen=True)
class IsoWindow:
    """One call per partition day D: ``[D 00:00, D+1 00:00)`` in the location's zone, as ISO
    date-times with offset in the ``since``/``until`` fields (docs/booker-api.md §4)."""

    since: str
    until: str
    selects: str = ""  # the record's date-time it selects by; default: ``since``'s <Field>

    def __post_init__(self) -> None:
        if not self.selects and not (self.since.startswith("From")
                                     and self.since.endswith("Offset")):
            raise ValueError(f"{self.since}: a window is From<Field>Offset, To<Field>Offset, "
                             "or names the field it selects by")

    @property
    def field(self) -> str:
        """The record's date-time the window selects by (``FromDateCreatedOffset`` →
        ``DateCreated``): what puts a row on its day (``catalogue/placing.py``)."""
        return self.selects or self.since.removeprefix("From").removesuffix("Offset")


@dataclass(frozen=True)
class AheadWindow:
    """The days after partition day D: one call, ``[D+1 00:00, D+1+N 00:00)`` in the location's
    zone (N: ``BOOKER_LOOKAHEAD_DAYS``), as ISO date-times like ``IsoWindow``, and only while
    D can be observed: its rows are what was booked ahead as seen when D was loaded."""

    since: str
    until: str


@dataclass(frozen=True)
class DateRange:
    """One call for the whole months of the slice's days, as ``YYYY-MM-DD`` (the same call for
    every run of a month: shared by a backfill's runs); each row names its day in
    ``day_field``. ``defaults_flag`` is sent false: its weekday defaults are a call (and a
    table) of their own, see ``WEEKDAY_DEFAULTS``."""

    since: str
    until: str
    day_field: str = "Date"
    defaults_flag: str = "getDefaultDaySchedule"


Days = IsoWindow | AheadWindow | DateRange | None


@dataclass(frozen=True)
class Call:
    """One Booker operation: a paged Find (POST) or a Get, and the record its rows follow."""

    path: str  # may hold {location_id} and {parent_id}
    results_key: str
    record: Record
    paged: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)  # constant body/query fields
    options: Mapping[str, str] = field(default_factory=dict)  # option name -> API field
    days: Days = None
    key_field: str = "ID"  # unique per row within a call: how a page shift is caught
    unwrap: str | None = None  # rows are {<unwrap>ID, <unwrap>: {...}} wrappers

    def __post_init__(self) -> None:
        unknown = set(self.options) - set(OPTIONS)
        if unknown:
            raise ValueError(f"{self.path}: unknown options {sorted(unknown)}")


@dataclass(frozen=True)
class LocationRecord:
    """The location's own record, ``GET /location/{id}`` with the brand token: the one the
    extractor already reads for the location's time zone, so it costs no request."""

    record: Record = field(default_factory=lambda: s.LOCATION)
    days: Days = None


Root = Call | LocationRecord


@dataclass(frozen=True)
class FromRoot:
    """The root's rows themselves, less the lists that are tables of their own; with
    ``local_days``, a DATE column per date-time column: its day in the location's zone."""

    local_days: Mapping[str, str] = field(default_factory=dict)  # new column -> date-time


@dataclass(frozen=True)
class Explode:
    """One row per element of ``list_field`` in each root row, with some parent columns."""

    list_field: str
    record: Record
    carry: Mapping[str, str] = field(default_factory=dict)  # new column -> parent's column
    carry_prefix: str | None = None  # carry every parent column under this prefix
    index_column: str | None = None  # 1-based position in the parent's list
    constants: Mapping[str, str] = field(default_factory=dict)
    drop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.list_field:
            raise ValueError("Explode needs the list_field whose elements become rows")


@dataclass(frozen=True)
class PerParent:
    """One ``call`` per distinct root row (only rows where a ``when_any`` field is true)."""

    call: Call
    when_any: tuple[str, ...] = ()
    carry: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.call.paged:
            raise ValueError(f"{self.call.path}: per-parent calls are Gets")


Source = FromRoot | Explode | PerParent


@dataclass(frozen=True)
class Table:
    """One DuckDB table (one Dagster asset): where its rows come from and what they mean.

    ``history`` says whether Booker dates the rows (``dated``: any past day can be loaded) or
    returns today's list (``snapshot``: a day gets rows only while it can be observed).
    ``counted`` tables are checked against the TotalResultsCount of their root call;
    ``changes_after_day`` tables are re-loaded over the lookback (late refunds, edits).
    A table ``only_with`` an option is asked only when that option is on; otherwise its
    partitions are recorded ``option_off``, with no rows and no call.
    """

    name: str
    description: str
    sources: tuple[Source, ...]
    key: tuple[str, ...]  # unique within a partition
    history: Literal["dated", "snapshot"]
    counted: bool = False
    changes_after_day: bool = False
    entity_key: tuple[str, ...] = ()  # the ``<name>_current`` view's entity; default: key
    pii: tuple[str, ...] = ()  # column prefixes dropped or hashed under BOOKER_PII
    only_with: str | None = None  # an option that must be on for this table to be asked
    shares: Mapping[str, str] = field(default_factory=dict)  # metadata name -> flag column

    def __post_init__(self) -> None:
        if self.only_with and self.only_with not in OPTIONS:
            raise ValueError(f"table {self.name}: unknown option {self.only_with}")
        if not self.sources or not self.key:
            raise ValueError(f"table {self.name} needs sources and a key")
        if self.counted and self.sources != (self.sources[0],) or (
                self.counted and not isinstance(self.sources[0], FromRoot)):
            raise ValueError(f"table {self.name}: only a table of root rows alone is counted")
        if not self.entity_key:
            object.__setattr__(self, "entity_key", self.key)


@dataclass(frozen=True)
class ReportGroup:
    name: str
    root: Root
    tables: tuple[Table, ...]
    options: tuple[str, ...] = ()  # the Domo options these reports read
    unstored: tuple[str, ...] = ()  # root lists another report's table holds as rows

    def __post_init__(self) -> None:
        unknown = set(self.options) - set(OPTIONS)
        if unknown:
            raise ValueError(f"report {self.name}: unknown options {sorted(unknown)}")
        if any(t.counted for t in self.tables) and not (
                isinstance(self.root, Call) and self.root.paged):
            raise ValueError(f"report {self.name}: only paged Finds report a total")

    @property
    def fan_outs(self) -> int:
        """Distinct calls asked once per root row (customers: memberships, progress notes):
        with them a report's cost grows with its rows, not with its days and locations."""
        return len({src.call.path for t in self.tables for src in t.sources
                    if isinstance(src, PerParent)})

    @property
    def exploded(self) -> tuple[str, ...]:
        """Root fields that are tables of their own (``Items``, ``Notes``...), here or in
        another report (``unstored``): never columns."""
        return tuple(dict.fromkeys([*(src.list_field for t in self.tables for src in t.sources
                                      if isinstance(src, Explode)), *self.unstored]))


def _find(path: str, record: Record, results_key: str = "Results", **kwargs: Any) -> Call:
    return Call(path=f"{MERCHANT}/{path}", results_key=results_key, record=record, **kwargs)


def _get(path: str, results_key: str, record: Record, **kwargs: Any) -> Call:
    return Call(path=f"{MERCHANT}/{path}", results_key=results_key, record=record, paged=False,
                **kwargs)


_LOC = (LOCATION_COLUMN,)
_SCHEDULE_DAYS = DateRange("fromDate", "toDate")
_ORDER = {"order_id": "id", "order_number": "order_number", "order_date_created": "date_created"}
_INCLUDE_EXPIRED = {"include_expired": "IncludeExpired"}
# Domo's "Get Schedule Defaults?": Booker ignores the dates and returns one row per weekday,
# undated. Their own tables, not rows of the dated schedules: a weekday default is not any
# day's schedule, and one table holding both would count each day twice.
WEEKDAY_DEFAULTS = {"getDefaultDaySchedule": True}
_DEFAULTS_NOTE = ("Asked only with schedule_defaults on (BOOKER_SCHEDULE_DEFAULTS); a "
                  "snapshot: stored only for the day it is observed.")


def _snapshot(name: str, what: str, root: Call, options: tuple[str, ...] = ()) -> ReportGroup:
    """A list Booker returns as it is today: one table of its rows, counted."""
    return ReportGroup(name, root, options=options, tables=(
        Table(name, f"{what} (snapshot: stored only for the day it is observed). Key: "
              "location_id, id.", (FromRoot(),), key=(*_LOC, "id"), history="snapshot",
              counted=True),
    ))


GROUPS: tuple[ReportGroup, ...] = (
    ReportGroup(
        name="locations",
        root=LocationRecord(),
        tables=(
            Table("locations", "The location's own record (snapshot: stored only for the day "
                  "it is observed). Key: location_id.", (FromRoot(),), key=_LOC,
                  history="snapshot"),
        ),
    ),
    ReportGroup(
        name="customers",
        root=_find(
            "customers",
            s.CUSTOMER,
            "Customers",
            params={"FilterByExactLocationID": True, "CustomerRecordType": 1},
            days=IsoWindow("FromDateLastModifiedOffset", "ToDateLastModifiedOffset"),
            key_field="CustomerID",
            unwrap="Customer",
        ),
        options=("include_expired",),
        tables=(
            Table(
                "customers",
                "Customers modified on the partition day (local time), as of that change. "
                "Key: location_id, id.",
                (FromRoot(),),
                key=(*_LOC, "id"),
                history="dated",
                counted=True,
                changes_after_day=True,
                pii=("email", "home_phone", "cell_phone", "work_phone", "address_",
                     "date_of_birth"),
            ),
            Table(
                "customer_memberships",
                "Memberships of the customers modified that day (only those with a current or "
                "past membership are asked). Key: location_id, customer_membership_id.",
                (PerParent(_get("customer/{parent_id}/memberships", "Results",
                                s.CUSTOMER_MEMBERSHIP, options=_INCLUDE_EXPIRED),
                           when_any=("HasMembership", "HasPastMembership")),),
                key=(*_LOC, "customer_membership_id"),
                history="dated",
                changes_after_day=True,
            ),
            Table(
                "notes",
                "Customer notes and progress notes of the customers modified that day; "
                "note_type is 'customer' or 'progress'. Key: location_id, note_type, id.",
                (
                    Explode("Notes", s.CUSTOMER_NOTE, carry={"customer_id": "id"},
                            constants={"note_type": "customer"}),
                    PerParent(_get("customer/{parent_id}/progress_notes", "Results",
                                   s.PROGRESS_NOTE),
                              carry={"customer_id": "id"}, constants={"note_type": "progress"}),
                ),
                key=(*_LOC, "note_type", "id"),
                history="dated",
                changes_after_day=True,
            ),
        ),
    ),
    ReportGroup(
        name="employees",
        root=_find("employees", s.EMPLOYEE, options={
            "ignore_freelancers": "IgnoreFreelancers",
            "only_active_employees": "OnlyIncludeActiveEmployees",
        }),
        options=("ignore_freelancers", "only_active_employees", "schedule_defaults"),
        tables=(
            Table("employees", "Employees of the location (snapshot: stored only for the day "
                  "it is observed). Key: location_id, id.", (FromRoot(),), key=(*_LOC, "id"),
                  history="snapshot", counted=True),
            Table(
                "employee_schedules",
                "One row per employee per date (weekday defaults are a table of their own). "
                "Key: location_id, employee_id, date, weekday.",
                (PerParent(_get("employee/{parent_id}/schedule", "EmployeeDaySchedules",
                                s.EMPLOYEE_SCHEDULE, days=_SCHEDULE_DAYS),
                           carry={"employee_id": "id"}),),
                key=(*_LOC, "employee_id", "date", "weekday"),
                history="dated",
            ),
            Table(
                "employee_schedule_defaults",
                f"Each employee's default hours per weekday (no date). {_DEFAULTS_NOTE} "
                "Key: location_id, employee_id, weekday.",
                (PerParent(_get("employee/{parent_id}/schedule", "EmployeeDaySchedules",
                                s.EMPLOYEE_SCHEDULE_DEFAULT, params=WEEKDAY_DEFAULTS),
                           carry={"employee_id": "id"}),),
                key=(*_LOC, "employee_id", "weekday"),
                history="snapshot",
                only_with="schedule_defaults",
            ),
        ),
    ),
    ReportGroup(
        name="location_schedules",
        root=_get("location/{location_id}/schedule", "LocationDaySchedules",
                  s.LOCATION_SCHEDULE, days=_SCHEDULE_DAYS),
        tables=(
            Table("location_schedules", "Opening hours: one row per date (weekday defaults are a "
                  "table of their own). Key: location_id, date, weekday.",
                  (FromRoot(),), key=(*_LOC, "date", "weekday"), history="dated"),
        ),
    ),
    ReportGroup(
        name="location_schedule_defaults",
        root=_get("location/{location_id}/schedule", "LocationDaySchedules",
                  s.LOCATION_SCHEDULE_DEFAULT, params=WEEKDAY_DEFAULTS),
        options=("schedule_defaults",),
        tables=(
            Table("location_schedule_defaults", "The location's default opening hours per "
                  f"weekday (no date). {_DEFAULTS_NOTE} Key: location_id, weekday.",
                  (FromRoot(),), key=(*_LOC, "weekday"), history="snapshot",
                  only_with="schedule_defaults"),
        ),
    ),
    _snapshot("memberships", "Membership plans offered",
              _find("memberships", s.MEMBERSHIP, options=_INCLUDE_EXPIRED),
              options=("include_expired",)),
    ReportGroup(
        name="products",
        root=_find("products", s.PRODUCT),
        tables=(
            Table(
                "products",
                "One row per product variant, with its product's columns as product_* "
                "(snapshot: stored only for the day it is observed). Key: location_id, id "
                "(the variant).",
                (Explode("ProductVariants", s.PRODUCT_VARIANT, carry_prefix="product_"),),
                key=(*_LOC, "id"),
                history="snapshot",
            ),
        ),
    ),
    ReportGroup(
        name="orders",
        root=_find("orders", s.ORDER, days=IsoWindow("FromDateCreatedOffset",
                                                      "ToDateCreatedOffset")),
        tables=(
            Table("orders", "Orders created on the partition day (local time), without their "
                  "item and refund lists. Key: location_id, id.",
                  (FromRoot(),), key=(*_LOC, "id"), history="dated",
                  counted=True, changes_after_day=True),
            Table(
                "orders_items",
                "One row per order item of the day's orders, with the order's id, number and "
                "date. Key: location_id, id.",
                (Explode("Items", s.ORDER_ITEM, carry=_ORDER, drop=("Refunds",)),),
                key=(*_LOC, "id"),
                history="dated",
                changes_after_day=True,
            ),
            Table(
                "orders_refunds",
                "One row per order-level refund of the day's orders (the complete list; item "
                "refunds repeat it). Key: location_id, order_id, refund_index.",
                (Explode("Refunds", s.REFUND, carry=_ORDER, index_column="refund_index"),),
                key=(*_LOC, "order_id", "refund_index"),
                history="dated",
                changes_after_day=True,
            ),
        ),
    ),
    ReportGroup(
        name="appointments",
        root=_find("appointments", s.APPOINTMENT, days=IsoWindow(
            "FromStartDateOffset", "ToStartDateOffset", selects="StartDateTime")),
        tables=(
            Table("appointments", "Appointments that start on the partition day (local time), "
                  "cancelled and no-show ones included and flagged, without their service "
                  "lines; their status as of the latest load of the day (re-loaded over the "
                  "lookback: a status moves after the day). Key: location_id, id.",
                  (FromRoot(),), key=(*_LOC, "id"), history="dated", counted=True,
                  changes_after_day=True,
                  shares={"no_show": "is_no_show", "cancelled": "is_cancelled"}),
            Table("appointment_treatments", "One row per service line of the day's "
                  "appointments. Key: location_id, id.",
                  (Explode("AppointmentTreatments", s.APPOINTMENT_TREATMENT),),
                  key=(*_LOC, "id"), history="dated", changes_after_day=True),
        ),
    ),
    ReportGroup(
        name="appointment_book",
        root=_find("appointments", s.APPOINTMENT, days=AheadWindow("FromStartDateOffset",
                                                                    "ToStartDateOffset")),
        unstored=("AppointmentTreatments",),  # the start day's appointment_treatments
        tables=(
            Table("appointment_book", "The book ahead as observed when the partition day was "
                  "loaded: the appointments starting in the BOOKER_LOOKAHEAD_DAYS days after "
                  "it (start_day), with their status then, without their service lines "
                  "(appointment_treatments holds them once the start day is loaded; snapshot: "
                  "stored only for the day it is observed, so each day's observation stays). "
                  "Key: location_id, id.",
                  (FromRoot(local_days={"start_day": "start_date_time"}),),
                  key=(*_LOC, "id"), history="snapshot", counted=True),
        ),
    ),
    _snapshot("rooms", "Rooms of the location", _find("rooms", s.ROOM)),
    _snapshot("treatments", "Treatments offered", _find("treatments", s.TREATMENT, "Treatments")),
)

TABLES: dict[str, Table] = {t.name: t for g in GROUPS for t in g.tables}
GROUP_OF: dict[str, ReportGroup] = {t.name: g for g in GROUPS for t in g.tables}
