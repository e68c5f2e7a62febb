"""Domo's connector options, as data: each report group lists the ones it reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    """A yes/no option of Domo's Booker connector, and the tables whose rows it changes."""

    name: str
    domo_name: str
    description: str
    tables: tuple[str, ...]


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option("include_expired", "Include Expired?",
               "Also load expired memberships (plans and customers' memberships).",
               ("memberships", "customer_memberships")),
        Option("ignore_freelancers", "Ignore Freelancers?",
               "Leave freelancers out of the employees (and so of their schedules).",
               ("employees", "employee_schedules")),
        Option("only_active_employees", "Only Active Employees?",
               "Load only active employees (and their schedules).",
               ("employees", "employee_schedules")),
        Option("schedule_defaults", "Get Schedule Defaults?",
               "Load each weekday's default hours (one row per weekday, no date) instead of "
               "each day's schedule; like a snapshot, they are stored on observable days only.",
               ("location_schedules", "employee_schedules")),
    )
}
