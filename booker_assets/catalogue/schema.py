"""Declared schemas: every field of the Booker records in docs/booker-api.md §6, typed.

A record schema maps Booker's field names to a ``Field`` (a column type and the description the
Dagster UI shows) or to a nested record, flattened into ``<parent>_<child>`` columns. A date-time
field is declared once, under its legacy name: its ISO ``...Offset`` twin is read with it.
Columns exist from a table's first load whatever the day's values are, and a value that does
not fit its declared type makes its record a reject (``booker._rejects``), never a cast.

Where the contract names a field but not its type, the type is our reading, chosen so that
no plausible value is lost: text for codes and numbers users read (``OrderNumber``), DOUBLE
for counts that may be fractional (quantities, inventory, points). Money is DECIMAL(18,2): an
amount is exact cents, and sums over years of orders must not drift as DOUBLE sums do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

BIGINT = "BIGINT"
MONEY = "DECIMAL(18,2)"
DOUBLE = "DOUBLE"
TEXT = "VARCHAR"
BOOLEAN = "BOOLEAN"
TIMESTAMP = "TIMESTAMP WITH TIME ZONE"
DATE = "DATE"
TIME = "TIME"
JSON = "JSON"
TYPES = (BIGINT, MONEY, DOUBLE, TEXT, BOOLEAN, TIMESTAMP, DATE, TIME, JSON)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_PLURAL_ID = re.compile(r"IDs(?=[A-Z]|$)")  # a plural of ID is one word, not "I_Ds"


def snake(name: str) -> str:
    """A field's column name: ``DateCreated`` → ``date_created``, ``CustomerID`` →
    ``customer_id``, ``SKU`` → ``sku``, ``EmployeeIDs`` → ``employee_ids``."""
    return _CAMEL.sub("_", _PLURAL_ID.sub("Ids", name)).lower()


@dataclass(frozen=True)
class Field:
    """One Booker field: its column type and what it means. A JSON list declares its
    ``items`` (a field or a record), so each element is read like a column would be."""

    type: str
    description: str
    items: Field | Record | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown column type {self.type!r}; known: {', '.join(TYPES)}")
        if self.items is not None and self.type != JSON:
            raise ValueError("only a JSON list declares its items")


Record = Mapping[str, Union[Field, "Record"]]


def money(what: str) -> Record:
    return {"Amount": Field(MONEY, f"{what}: amount"),
            "CurrencyCode": Field(TEXT, f"{what}: ISO 4217 currency code")}


def lookup(what: str) -> Record:
    return {"ID": Field(BIGINT, f"{what}: Booker's id"), "Name": Field(TEXT, f"{what}: name")}


def _id(what: str) -> Field:
    return Field(BIGINT, f"Booker's id of the {what}")


def _when(what: str) -> Field:
    return Field(TIMESTAMP, f"When {what} (UTC; read from the ISO twin or the legacy form)")


def _flag(what: str) -> Field:
    return Field(BOOLEAN, what)


def _text(what: str) -> Field:
    return Field(TEXT, what)


def _ids(what: str) -> Field:
    return Field(JSON, f"Ids of the {what} (JSON list)", items=Field(BIGINT, "an id"))


ADDRESS: Record = {
    "Street1": _text("Street, first line"),
    "Street2": _text("Street, second line"),
    "City": _text("City"),
    "State": _text("State or province"),
    "Zip": _text("Postal code"),
    "Country": lookup("Country"),
}

LOCATION: Record = {
    "ID": _id("location"),
    "AccountName": _text("Booker account name of the location"),
    "BusinessName": _text("Business name shown to customers"),
    "BusinessType": lookup("Business type"),
    "EmailAddress": _text("Location's email address"),
    "Address": ADDRESS,
    "Phone": _text("Location's phone number"),
    "TimeZone": {
        # text: some deployments send a Windows zone name here, not a number
        "ID": _text("Booker's time-zone id"),
        "Name": _text("Windows display name of the zone, e.g. (GMT-06:00) Central Time"),
        "StandardName": _text("Windows standard name of the zone, e.g. Central Standard Time"),
    },
    "WebSite": _text("Web site"),
    "CurrencyCode": _text("Currency of the location's amounts (ISO 4217)"),
    "Status": Field(BIGINT, "1 Implementation, 2 Demo, 3 LiveNoCharge, 4 Live, 5 Terminated, "
                            "6 ChargeNotLive"),
    "BrandAccountName": _text("Account name of the brand the location belongs to"),
}

CUSTOMER: Record = {
    "CustomerID": _id("customer (from the list's wrapper)"),
    "ID": _id("customer"),
    "GUID": _text("Customer's GUID"),
    "FirstName": _text("First name"),
    "LastName": _text("Last name"),
    "Email": _text("Email address (personal: see BOOKER_PII)"),
    "HomePhone": _text("Home phone (personal)"),
    "CellPhone": _text("Cell phone (personal)"),
    "WorkPhone": _text("Work phone (personal)"),
    "Address": ADDRESS,
    "DateOfBirth": Field(DATE, "Date of birth (personal)"),
    "Gender": lookup("Gender"),
    "LocationID": _id("customer's home location"),
    "IsActive": _flag("The customer record is active"),
    "CustomerRecordType": lookup("Record type (1: customer)"),
    "AllowReceiveEmails": _flag("Opted in to emails"),
    "AllowReceiveSMS": _flag("Opted in to text messages"),
    "LoyaltyPoints": Field(DOUBLE, "Loyalty points balance"),
    "HasMembership": _flag("Has a membership"),
    "HasActiveMembership": _flag("Has an active membership"),
    "HasPastMembership": _flag("Had a membership that ended"),
    "CustomerStats": {
        "DateOfFirstVisit": _when("the customer first visited"),
        "DateOfLastVisit": _when("the customer last visited"),
        "TotalServiceSales": money("Lifetime service sales"),
        "TotalRetailSales": money("Lifetime retail sales"),
        "TotalSales": money("Lifetime sales"),
    },
    "DateCreated": _when("the customer was created"),
    "DateLastModified": _when("the customer was last modified (places the row on its day)"),
}

CUSTOMER_MEMBERSHIP: Record = {
    "CustomerMembershipID": _id("customer's membership"),
    "CustomerID": _id("customer"),
    "MembershipID": _id("membership plan"),
    "MembershipName": _text("Name of the membership plan"),
    "LevelName": _text("Level of the plan"),
    "Status": lookup("Membership status"),
    "StartDate": _when("the membership started"),
    "MembershipExpirationDate": _when("the membership expires or expired"),
    "NextChargeDate": _when("the membership is charged next"),
    "PaymentFrequencyType": lookup("Payment frequency"),
    "HasAutopay": _flag("Charged automatically"),
    "SignupFee": money("Signup fee"),
    "TotalFee": money("Total fee"),
    "IsExpired": _flag("The membership has expired"),
}

EMPLOYEE: Record = {
    "ID": _id("employee"),
    "LocationID": _id("location"),
    "FirstName": _text("First name"),
    "LastName": _text("Last name"),
    "DisplayName": _text("Name shown to customers"),
    "Email": _text("Email address"),
    "MobilePhone": _text("Mobile phone"),
    "Gender": lookup("Gender"),
    "Type": Field(BIGINT, "1 employee, 2 freelancer"),
    "Status": lookup("Employment status (Active, Inactive)"),
    "DateCreated": _when("the employee was created"),
}

_HOURS: Record = {
    "Weekday": _text("Day of the week, e.g. Monday"),
    "StartTime": Field(TIME, "Opening or shift start, local time of day"),
    "EndTime": Field(TIME, "Closing or shift end, local time of day"),
}
# A dated schedule row and a weekday default are different records (the default has no
# Date): they are stored in different tables, never one table holding both.
_DAY_SCHEDULE: Record = {"LocationID": _id("location"), "Date": Field(DATE, "The day"),
                         **_HOURS}
_WEEKDAY_DEFAULT: Record = {"LocationID": _id("location"), **_HOURS}
_EMPLOYEE_DAY: Record = {"EmployeeID": _id("employee"),
                         "IsOff": _flag("The employee is off that day")}
_LOCATION_DAY: Record = {"IsClosed": _flag("The location is closed")}
EMPLOYEE_SCHEDULE: Record = {**_DAY_SCHEDULE, **_EMPLOYEE_DAY}
LOCATION_SCHEDULE: Record = {**_DAY_SCHEDULE, **_LOCATION_DAY}
EMPLOYEE_SCHEDULE_DEFAULT: Record = {**_WEEKDAY_DEFAULT, **_EMPLOYEE_DAY}
LOCATION_SCHEDULE_DEFAULT: Record = {**_WEEKDAY_DEFAULT, **_LOCATION_DAY}

MEMBERSHIP: Record = {
    "ID": _id("membership plan"),
    "Name": _text("Plan name"),
    "Description": _text("Plan description"),
    "Levels": Field(JSON, "The plan's levels: ID, LevelName, Fee, PaymentFrequencyType, "
                          "SignupFee (JSON list)", items={
                              "ID": _id("level"), "LevelName": _text("Level name"),
                              "Fee": money("Fee"), "PaymentFrequencyType": lookup("Frequency"),
                              "SignupFee": money("Signup fee")}),
    "Status": lookup("Plan status"),
    "StartDate": _when("the plan is offered from"),
    "ExpirationDate": _when("the plan expires"),
    "IsExpired": _flag("The plan has expired"),
}

CUSTOMER_NOTE: Record = {
    "ID": _id("note"),
    "DateCreated": _when("the note was written"),
    "Text": _text("The note"),
    "CreatedByUser": _text("Who wrote it"),
}
PROGRESS_NOTE: Record = {
    "ID": _id("note"),
    "CustomerID": _id("customer"),
    "AppointmentID": _id("appointment"),
    "EmployeeID": _id("employee who wrote it"),
    "Text": _text("The note"),
    "DateCreated": _when("the note was written"),
}

PRODUCT: Record = {
    "ID": _id("product"),
    "Name": _text("Product name"),
    "Description": _text("Product description"),
    "Brand": _text("Brand"),
    "Category": lookup("Product category"),
    "IsActive": _flag("The product is sold"),
}
PRODUCT_VARIANT: Record = {
    "ID": _id("product variant"),
    "Name": _text("Variant name, e.g. its size"),
    "SKU": _text("Stock keeping unit"),
    "Barcode": _text("Barcode"),
    "Price": money("Retail price"),
    "Cost": money("Cost"),
    "RetailInventory": Field(DOUBLE, "Units in retail stock"),
    "BackbarInventory": Field(DOUBLE, "Units in back-bar stock"),
}

ORDER: Record = {
    "ID": _id("order"),
    "OrderNumber": _text("Order number shown on receipts"),
    "LocationID": _id("location"),
    "CustomerID": _id("customer (null: walk-in)"),
    "Status": lookup("Order status"),
    "IsCompleted": _flag("The order is completed"),
    "IsDeleted": _flag("The order is deleted"),
    "DateCreated": _when("the order was created (places the row on its day)"),
    "DateCompleted": _when("the order was completed"),
    "DatePaid": _when("the order was paid"),
    "DateLastModified": _when("the order was last modified"),
    "SubTotal": money("Subtotal"),
    "Discount": money("Discount"),
    "TotalTaxes": money("Taxes"),
    "TotalTip": money("Tip"),
    "FinalTotal": money("Final total"),
    "RefundsAmount": money("Refunded so far"),
}
ORDER_ITEM: Record = {
    "ID": _id("order item"),
    "OrderID": _id("order"),
    "DateCreated": _when("the item was added"),
    "Type": lookup("Item type"),
    "BillableItemID": _id("billable item (service, product, gift card...)"),
    "BillableItem": {"Name": _text("Billable item: name"), "SKU": _text("Billable item: SKU"),
                     "Price": money("Billable item: list price")},
    "Quantity": Field(DOUBLE, "Quantity"),
    "UnitPrice": money("Unit price"),
    "DynamicPrice": {"OriginalPrice": money("Original price"), "Discount": money("Discount"),
                     "FinalPrice": money("Final price")},
    "IsService": _flag("The item is a service"),
    "IsRetail": _flag("The item is a retail product"),
    "IsGiftCard": _flag("The item is a gift card"),
    "EmployeeID": _id("employee credited"),
    "AppointmentID": _id("appointment"),
    "CustomerMembershipID": _id("customer's membership used"),
}
REFUND: Record = {
    "OrderID": _id("order"),
    "OrderItemID": _id("order item refunded"),
    "Amount": money("Refunded"),
    "PaymentMethod": lookup("Payment method"),
    "Type": lookup("Refund type"),
    "TotalTax": money("Tax refunded"),
    "Notes": _text("Notes"),
    "DateCreated": _when("the refund was made"),
}

ROOM: Record = {
    "ID": _id("room"),
    "LocationID": _id("location"),
    "Name": _text("Room name"),
    "Description": _text("Room description"),
    "Capacity": Field(BIGINT, "People the room holds"),
    "Type": _text("Room type"),
    "Treatments": _ids("treatments given in the room"),
    "DateCreated": _when("the room was created"),
    "DateLastModified": _when("the room was last modified"),
}

TREATMENT: Record = {
    "ID": _id("treatment"),
    "Name": _text("Treatment name"),
    "DisplayName": _text("Name shown to customers"),
    "Description": _text("Description"),
    "Category": lookup("Category"),
    "SubCategory": lookup("Subcategory"),
    "Price": money("Price"),
    "TreatmentDuration": Field(BIGINT, "Duration of the treatment, minutes"),
    "TotalDuration": Field(BIGINT, "Duration with preparation, minutes"),
    "IsActive": _flag("The treatment is offered"),
    "IsDeleted": _flag("The treatment is deleted"),
    "IsClass": _flag("The treatment is a class"),
    "IsForCouples": _flag("The treatment is for couples"),
    "AllowCustomersToBookOnline": _flag("Customers may book it online"),
    "EmployeeIDs": _ids("employees who give it"),
    "RoomIDs": _ids("rooms it is given in"),
    "DateCreated": _when("the treatment was created"),
    "DateLastModified": _when("the treatment was last modified"),
}

APPOINTMENT_TREATMENT: Record = {
    "ID": _id("service line"),
    "AppointmentID": _id("appointment"),
    "TreatmentID": _id("treatment"),
    "TreatmentName": _text("Treatment name"),
    "EmployeeID": _id("employee who gives it"),
    "EmployeeWasRequested": _flag("The customer asked for this employee"),
    "RoomID": _id("room"),
    "RoomName": _text("Room name"),
    "StartDateTime": _when("the line starts"),
    "EndDateTime": _when("the line ends"),
    "TreatmentDuration": Field(BIGINT, "Duration of the treatment, minutes"),
    "ProcessingTimeDuration": Field(BIGINT, "Processing time within it, minutes"),
    "FinishTimeDuration": Field(BIGINT, "Finishing time after it, minutes"),
    "TagPrice": money("List price"),
    "DynamicPrice": money("Price charged"),
}
APPOINTMENT: Record = {
    "ID": _id("appointment"),
    "BookingNumber": _text("Booking number shown to the customer"),
    "LocationID": _id("location"),
    "CustomerID": _id("customer (null: walk-in without a record)"),
    "EmployeeID": _id("employee of the first service line"),
    "TreatmentID": _id("treatment of the first service line"),
    "TreatmentName": _text("Treatment of the first service line"),
    "OrderID": _id("order it was checked out in (null until then)"),
    "Status": lookup("Status as of the load (e.g. Booked, Checked In, Completed, Cancelled, "
                     "No Show)"),
    "StartDateTime": _when("the appointment starts (places the row on its day)"),
    "EndDateTime": _when("the appointment ends"),
    "DateCreated": _when("the appointment was created"),
    "DateBooked": _when("the appointment was booked"),
    "DateCheckIn": _when("the customer checked in"),
    "DateNoShow": _when("the appointment was marked a no-show"),
    "IsCancelled": _flag("Cancelled"),
    "IsNoShow": _flag("The customer did not show"),
    "IsCancelledOrNoShow": _flag("Cancelled or a no-show"),
    "CancellationID": _id("cancellation"),
    "IsWebBooking": _flag("Booked online"),
    "Source": lookup("Where it was booked (front desk, online, ...)"),
    "IsRecurring": _flag("Part of a recurring series"),
    "RecurrenceID": _id("recurring series"),
    "IsFromWaitList": _flag("Booked from the wait list"),
    "IsPreBookedAtPastCheckout": _flag("Booked at the checkout of a previous visit"),
    "FinalTotal": money("Total of its service lines"),
    "Room": lookup("Room of the first service line"),
    "Notes": _text("Notes on the appointment"),
}
