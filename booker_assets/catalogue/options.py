"""Domo's connector options, as data: each report group lists the ones it reads.

In Domo a DataSet's options are set once and every update uses them; here too they are a
deployment's choice (a ``BOOKER_*`` setting each, settings.py), which a run's config may
override for that run.
"""

from __future__ import annotations

from dataclasses import dataclass

from booker_assets.settings import OPTION_NAMES, option_setting


@dataclass(frozen=True)
class Option:
    """A yes/no option of Domo's Booker connector, and the tables whose rows it changes."""

    name: str
    domo_name: str
    description: str
    tables: tuple[str, ...]

    @property
    def setting(self) -> str:
        """The environment variable holding the deployment's value."""
        return option_setting(self.name)


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option("include_expired", "Include Expired?",
               "Also load expired memberships (plans and customers' memberships).",
               ("memberships", "customer_memberships")),
        Option("ignore_freelancers", "Ignore Freelancers?",
               "Leave freelancers out of the employees (and so of their schedules).",
               ("employees", "employee_schedules", "employee_schedule_defaults")),
        Option("only_active_employees", "Only Active Employees?",
               "Load only active employees (and their schedules).",
               ("employees", "employee_schedules", "employee_schedule_defaults")),
        Option("schedule_defaults", "Get Schedule Defaults?",
               "Also load each weekday's default hours (one row per weekday, no date) into "
               "their own tables; like a snapshot, they are stored on observable days only. "
               "The dated schedules are loaded either way.",
               ("location_schedule_defaults", "employee_schedule_defaults")),
    )
}


if tuple(OPTIONS) != OPTION_NAMES:  # settings.py reads a setting for each name, no other
    raise ValueError(f"catalogue options {tuple(OPTIONS)} are not settings' {OPTION_NAMES}")


def table_options(table: str) -> tuple[str, ...]:
    """The options that change ``table``'s rows."""
    return tuple(name for name, option in OPTIONS.items() if table in option.tables)
