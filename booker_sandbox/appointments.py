"""The sandbox's appointments (docs/booker-api.md §6): a visit's lifecycle and how it is served.

An appointment is generated once, with every moment of its life (booked, checked in, completed
at checkout, cancelled, marked a no-show the next morning); what the server sends is the record
as it stood at the server's clock (``as_of``), so its status changes as its day passes and a
re-read of the day (the daily lookback) sees the change.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from booker_sandbox.records import money, stamp

STATUSES = {
    "booked": {"ID": 1, "Name": "Booked"},
    "checked_in": {"ID": 2, "Name": "Checked In"},
    "completed": {"ID": 3, "Name": "Completed"},
    "cancelled": {"ID": 4, "Name": "Cancelled"},
    "no_show": {"ID": 5, "Name": "No Show"},
}
_SOURCES = {"desk": {"ID": 1, "Name": "Front Desk"}, "online": {"ID": 2, "Name": "Online"},
            "phone": {"ID": 3, "Name": "Phone"}, "walk_in": {"ID": 4, "Name": "Walk-in"}}
_NOTES = (None, None, None, "First visit: allow extra time.", "Requested a quiet room.",
          "Running 10 minutes late (called ahead).")


@dataclass(frozen=True)
class Line:
    """One service line (``AppointmentTreatments[]``)."""

    id: int
    treatment: dict
    employee_id: int
    requested: bool
    room: dict | None
    start: datetime
    end: datetime
    final_cents: int


@dataclass(frozen=True)
class Booking:
    """How and when the appointment came into the book."""

    at: datetime
    source: str
    pre_booked: bool  # booked at the checkout of a previous visit


@dataclass(frozen=True)
class Appointment:
    id: int
    number: int
    location_id: int
    customer_id: int | None
    lines: tuple[Line, ...]
    booking: Booking
    checked_in: datetime | None = None  # visits that happened
    completed: datetime | None = None  # checkout: when its order was created
    order_id: int | None = None
    cancelled: datetime | None = None
    no_show: datetime | None = None  # when the front desk marked it (the next morning)
    notes: str | None = None

    @property
    def start(self) -> datetime:
        return self.lines[0].start


def draw_booking(rng: random.Random, start: datetime, open_s: int, close_s: int) -> Booking:
    """Walk-ins book minutes ahead; the rest days or weeks ahead, online at any hour, at the
    desk or by phone within opening hours, some at the checkout of their previous visit."""
    roll = rng.random()
    if roll < 0.15:
        return Booking(start - timedelta(minutes=rng.randrange(5, 30)), "walk_in", False)
    if roll < 0.45:
        days, seconds = rng.randrange(1, 40), rng.randrange(7 * 3600, 23 * 3600)
        return Booking(_wall(start, -days, seconds), "online", False)
    seconds = rng.randrange(open_s, close_s)
    if roll < 0.65:
        return Booking(_wall(start, -rng.choice((28, 35, 42)), seconds), "desk", True)
    return Booking(_wall(start, -rng.randrange(1, 21), seconds), "phone", False)


def _wall(moment: datetime, days: int, seconds: int) -> datetime:
    """Local wall-clock ``seconds`` after midnight, ``days`` from ``moment``'s local day."""
    day = moment.date() + timedelta(days=days)
    clock = time(seconds // 3600, seconds // 60 % 60, seconds % 60)
    return datetime.combine(day, clock, moment.tzinfo)


def next_morning(start: datetime, open_s: int, rng: random.Random) -> datetime:
    """When a no-show is marked: the next day, within an hour of opening."""
    return _wall(start, 1, open_s + rng.randrange(0, 3600))


def visible(appointment: Appointment, cutoff: datetime) -> bool:
    """Whether the appointment is in the book at ``cutoff`` (booked by then)."""
    return appointment.booking.at <= cutoff


def as_of(a: Appointment, cutoff: datetime) -> dict:
    """The record as served at ``cutoff``: its status, check-in, order and flags by then."""
    def by(moment: datetime | None) -> datetime | None:
        return moment if moment is not None and moment <= cutoff else None

    cancelled, no_show = by(a.cancelled), by(a.no_show)
    checked_in, completed = by(a.checked_in), by(a.completed)
    status = ("cancelled" if cancelled else "no_show" if no_show else "completed" if completed
              else "checked_in" if checked_in else "booked")
    first = a.lines[0]
    return {
        "ID": a.id,
        "BookingNumber": a.number,
        "LocationID": a.location_id,
        "CustomerID": a.customer_id,
        "EmployeeID": first.employee_id,
        "TreatmentID": first.treatment["ID"],
        "TreatmentName": first.treatment["Name"],
        "OrderID": a.order_id if completed else None,
        "Status": STATUSES[status],
        **stamp("StartDateTime", a.start),
        **stamp("EndDateTime", a.lines[-1].end),
        **stamp("DateCreated", a.booking.at),
        **stamp("DateBooked", a.booking.at),
        **stamp("DateCheckIn", checked_in),
        **stamp("DateNoShow", no_show),
        "IsCancelled": cancelled is not None,
        "IsNoShow": no_show is not None,
        "IsCancelledOrNoShow": cancelled is not None or no_show is not None,
        "CancellationID": a.id if cancelled else None,
        "IsWebBooking": a.booking.source == "online",
        "Source": _SOURCES[a.booking.source],
        "IsRecurring": False,
        "RecurrenceID": None,
        "IsFromWaitList": False,
        "IsPreBookedAtPastCheckout": a.booking.pre_booked,
        "FinalTotal": money(sum(line.final_cents for line in a.lines)),
        "Room": {"ID": first.room["ID"], "Name": first.room["Name"]} if first.room else None,
        "Notes": a.notes,
        "AppointmentTreatments": [_line(a.id, line) for line in a.lines],
    }


def _line(appointment_id: int, line: Line) -> dict:
    treatment = line.treatment
    duration = treatment["TreatmentDuration"]
    return {
        "ID": line.id,
        "AppointmentID": appointment_id,
        "TreatmentID": treatment["ID"],
        "TreatmentName": treatment["Name"],
        "EmployeeID": line.employee_id,
        "EmployeeWasRequested": line.requested,
        "RoomID": line.room["ID"] if line.room else None,
        "RoomName": line.room["Name"] if line.room else None,
        **stamp("StartDateTime", line.start),
        **stamp("EndDateTime", line.end),
        "TreatmentDuration": duration,
        "ProcessingTimeDuration": 0,
        "FinishTimeDuration": treatment["TotalDuration"] - duration,
        "TagPrice": treatment["Price"],
        "DynamicPrice": money(line.final_cents),
    }


def notes(rng: random.Random) -> str | None:
    return rng.choice(_NOTES)
