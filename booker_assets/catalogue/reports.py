"""The report catalogue: every Booker report as data, read by one extractor and one asset factory.

A ``ReportGroup`` is one fetch (its ``root`` call) and the tables derived from it. Tables that
share a fetch are one Dagster multi-asset, so ``orders_items`` and ``orders_refunds`` come from
the same orders pages as ``orders``, and notes and customer memberships from the same customers.
Paths and results keys tagged [chosen] in the contract live only here, so a real account that
says otherwise is a one-line change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
from pydantic import Field

MERCHANT = "/v4.1/merchant"


@dataclass(frozen=True)
class Call:
    """One Booker operation: a paged Find (POST) or a Get."""

    path: str  # may hold {location_id} and {parent_id}
    results_key: str | None
    paged: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)  # constant body/query fields
    options: Mapping[str, str] = field(default_factory=dict)  # Dagster option -> API field
    window: tuple[str, str] | None = None  # ISO From/To fields: one call per partition day
    date_range: tuple[str, str] | None = None  # fromDate/toDate: one call for the slice's days
    defaults_flag: str | None = None  # set from the schedule_defaults option


@dataclass(frozen=True)
class Source:
    """How a table's rows come from its group's root rows."""

    kind: Literal["root", "explode", "per_parent"]
    list_field: str | None = None  # explode: the list inside each parent row
    call: Call | None = None  # per_parent: called once per distinct parent
    when_any: tuple[str, ...] = ()  # per_parent: only parents where one of these is true
    carry: Mapping[str, str] = field(default_factory=dict)  # new column -> parent's column
    carry_prefix: str | None = None  # explode: carry every parent column under this prefix
    index_column: str | None = None  # explode: 1-based position in the parent's list
    constants: Mapping[str, Any] = field(default_factory=dict)
    drop: tuple[str, ...] = ()  # fields that are tables of their own


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    sources: tuple[Source, ...]
    key: tuple[str, ...]  # unique within a partition
    entity_key: tuple[str, ...]  # one row per entity in the ``<name>_current`` view
    pii: tuple[str, ...] = ()  # column prefixes dropped or hashed under BOOKER_PII


class NoOptions(dg.Config):
    """This report has no Domo options."""


_EXPIRED = Field(False, description="Domo 'Include Expired?': also expired memberships")
_DEFAULTS = Field(False, description="Domo 'Get Schedule Defaults?': weekday defaults, no dates")


class MembershipOptions(dg.Config):
    include_expired: bool = _EXPIRED


class EmployeeOptions(dg.Config):
    ignore_freelancers: bool = Field(False, description="Domo 'Ignore Freelancers?'")
    only_active_employees: bool = Field(False, description="Domo 'Only Active Employees?'")
    schedule_defaults: bool = _DEFAULTS


class ScheduleOptions(dg.Config):
    schedule_defaults: bool = _DEFAULTS


@dataclass(frozen=True)
class ReportGroup:
    name: str
    root: Call
    tables: tuple[Table, ...]
    scope: Literal["brand", "location"] = "location"
    unwrap: str | None = None  # rows are {<Key>ID, <Key>: {...}} wrappers
    options: type[dg.Config] = NoOptions


def _find(path: str, results_key: str = "Results", **kwargs: Any) -> Call:
    return Call(path=f"{MERCHANT}/{path}", results_key=results_key, **kwargs)


def _get(path: str, results_key: str, **kwargs: Any) -> Call:
    return Call(path=f"{MERCHANT}/{path}", results_key=results_key, paged=False, **kwargs)


_ROOT = Source("root")
_SCHEDULE = {"date_range": ("fromDate", "toDate"), "defaults_flag": "getDefaultDaySchedule"}
_ORDER = {"order_id": "id", "order_number": "order_number", "order_date_created": "date_created"}
_LOC = ("location_id",)

GROUPS: tuple[ReportGroup, ...] = (
    ReportGroup(
        name="locations",
        scope="brand",
        root=_find("locations"),
        tables=(
            Table("locations", "Every location the token sees: one row per location per day "
                  "(daily snapshot). Key: id.", (_ROOT,), key=("id",), entity_key=("id",)),
        ),
    ),
    ReportGroup(
        name="customers",
        root=_find(
            "customers",
            "Customers",
            params={"FilterByExactLocationID": True, "CustomerRecordType": 1},
            window=("FromDateLastModifiedOffset", "ToDateLastModifiedOffset"),
        ),
        unwrap="Customer",
        options=MembershipOptions,
        tables=(
            Table(
                "customers",
                "Customers modified on the partition day (local time), as of that change. "
                "Key: location_id, id.",
                (Source("root", drop=("Notes",)),),
                key=(*_LOC, "id"),
                entity_key=(*_LOC, "id"),
                pii=("email", "home_phone", "cell_phone", "work_phone", "address_",
                     "date_of_birth"),
            ),
            Table(
                "customer_memberships",
                "Memberships of the customers modified that day (only those with a current or "
                "past membership are asked). Key: location_id, customer_membership_id.",
                (
                    Source(
                        "per_parent",
                        call=_get(
                            "customer/{parent_id}/memberships",
                            "Results",
                            options={"include_expired": "IncludeExpired"},
                        ),
                        when_any=("HasMembership", "HasPastMembership"),
                    ),
                ),
                key=(*_LOC, "customer_membership_id"),
                entity_key=(*_LOC, "customer_membership_id"),
            ),
            Table(
                "notes",
                "Customer notes and progress notes of the customers modified that day; "
                "note_type is 'customer' or 'progress'. Key: location_id, note_type, id.",
                (
                    Source(
                        "explode",
                        list_field="Notes",
                        carry={"customer_id": "id"},
                        constants={"note_type": "customer"},
                    ),
                    Source(
                        "per_parent",
                        call=_get("customer/{parent_id}/progress_notes", "Results"),
                        carry={"customer_id": "id"},
                        constants={"note_type": "progress"},
                    ),
                ),
                key=(*_LOC, "note_type", "id"),
                entity_key=(*_LOC, "note_type", "id"),
            ),
        ),
    ),
    ReportGroup(
        name="employees",
        root=_find(
            "employees",
            options={
                "ignore_freelancers": "IgnoreFreelancers",
                "only_active_employees": "OnlyIncludeActiveEmployees",
            },
        ),
        options=EmployeeOptions,
        tables=(
            Table("employees", "Employees of the location (daily snapshot). "
                  "Key: location_id, id.", (_ROOT,), key=(*_LOC, "id"), entity_key=(*_LOC, "id")),
            Table(
                "employee_schedules",
                "One row per employee per date (or per weekday with schedule_defaults). "
                "Key: location_id, employee_id, date, weekday.",
                (
                    Source(
                        "per_parent",
                        call=_get("employee/{parent_id}/schedule", "EmployeeDaySchedules",
                                  **_SCHEDULE),
                        carry={"employee_id": "id"},
                    ),
                ),
                key=(*_LOC, "employee_id", "date", "weekday"),
                entity_key=(*_LOC, "employee_id", "date", "weekday"),
            ),
        ),
    ),
    ReportGroup(
        name="location_schedules",
        root=_get("location/{location_id}/schedule", "LocationDaySchedules", **_SCHEDULE),
        options=ScheduleOptions,
        tables=(
            Table("location_schedules", "Opening hours: one row per date (or per weekday with "
                  "schedule_defaults). Key: location_id, date, weekday.", (_ROOT,),
                  key=(*_LOC, "date", "weekday"), entity_key=(*_LOC, "date", "weekday")),
        ),
    ),
    ReportGroup(
        name="memberships",
        root=_find("memberships", options={"include_expired": "IncludeExpired"}),
        options=MembershipOptions,
        tables=(
            Table("memberships", "Membership plans offered (daily snapshot). "
                  "Key: location_id, id.", (_ROOT,), key=(*_LOC, "id"), entity_key=(*_LOC, "id")),
        ),
    ),
    ReportGroup(
        name="products",
        root=_find("products"),
        tables=(
            Table(
                "products",
                "One row per product variant, with its product's columns as product_* "
                "(daily snapshot). Key: location_id, id (the variant).",
                (Source("explode", list_field="ProductVariants", carry_prefix="product_"),),
                key=(*_LOC, "id"),
                entity_key=(*_LOC, "id"),
            ),
        ),
    ),
    ReportGroup(
        name="orders",
        root=_find("orders", window=("FromDateCreatedOffset", "ToDateCreatedOffset")),
        tables=(
            Table("orders", "Orders created on the partition day (local time), without their "
                  "item and refund lists. Key: location_id, id.",
                  (Source("root", drop=("Items", "Refunds")),),
                  key=(*_LOC, "id"), entity_key=(*_LOC, "id")),
            Table(
                "orders_items",
                "One row per order item of the day's orders, with the order's id, number and "
                "date. Key: location_id, id.",
                (Source("explode", list_field="Items", carry=_ORDER, drop=("Refunds",)),),
                key=(*_LOC, "id"),
                entity_key=(*_LOC, "id"),
            ),
            Table(
                "orders_refunds",
                "One row per order-level refund of the day's orders (the complete list; item "
                "refunds repeat it). Key: location_id, order_id, refund_index.",
                (Source("explode", list_field="Refunds", carry=_ORDER,
                        index_column="refund_index"),),
                key=(*_LOC, "order_id", "refund_index"),
                entity_key=(*_LOC, "order_id", "refund_index"),
            ),
        ),
    ),
    ReportGroup(
        name="rooms",
        root=_find("rooms"),
        tables=(
            Table("rooms", "Rooms of the location (daily snapshot). Key: location_id, id.",
                  (_ROOT,), key=(*_LOC, "id"), entity_key=(*_LOC, "id")),
        ),
    ),
    ReportGroup(
        name="treatments",
        root=_find("treatments", "Treatments"),
        tables=(
            Table("treatments", "Treatments offered (daily snapshot). Key: location_id, id.",
                  (_ROOT,), key=(*_LOC, "id"), entity_key=(*_LOC, "id")),
        ),
    ),
)

TABLES: dict[str, Table] = {t.name: t for g in GROUPS for t in g.tables}
