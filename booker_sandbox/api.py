"""Booker's HTTP surface over the dataset (docs/booker-api.md §2-§5): routes, token scopes,
arguments, envelopes and paging. Pure request-in, reply-out; the server adds transport, limits
and faults."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs

from booker_assets.load.dates import EASTERN, BookerDateError, read_date
from booker_sandbox.data import SandboxDataset
from booker_sandbox.settings import SandboxSettings
from booker_sandbox.tokens import TokenSigner

PREFIX = "/v4.1/merchant"
ARGUMENT_ERROR = 200  # Booker's ErrorCode for argument errors
TOKEN_ERROR = 1000  # Booker's ErrorCode for an invalid or expired token
KEY_MESSAGE = ("Access denied due to invalid subscription key. Make sure to provide a valid key "
               "for an active subscription.")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]  # keys lower-cased: ASP.NET binds parameter names case-insensitively
    headers: Mapping[str, str]
    body: bytes

    @cached_property
    def json(self) -> Any:
        """The JSON body (``{}`` when empty); ``ArgumentProblem`` when it is not JSON."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ArgumentProblem("body", f"The request body is not valid JSON: {exc}") from exc


@dataclass
class Reply:
    status: int
    body: Any  # JSON-able
    headers: dict[str, str] = field(default_factory=dict)
    rows_key: str | None = None  # where the records sit
    record_body: bool = False  # the body itself is the record (GET /location/{id})
    paged: bool = False
    content_type: str = "application/json; charset=utf-8"
    truncated: bool = False  # fault: send only the first half of the bytes


class ArgumentProblem(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name, self.message = name, message


def envelope(**extra: Any) -> dict:
    return {"IsSuccess": True, "ErrorCode": 0, "ErrorMessage": None, "ArgumentErrors": None,
            **extra}


def failure(status: int, code: int, message: str, arguments: list[dict] | None = None) -> Reply:
    return Reply(status, {"IsSuccess": False, "ErrorCode": code, "ErrorMessage": message,
                          "ArgumentErrors": arguments})


def gateway_error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """The API gateway's own shape (subscription key, throttling), not Booker's envelope."""
    return Reply(status, {"statusCode": status, "message": message}, headers or {})


def oauth_error(error: str, description: str) -> Reply:
    return Reply(400, {"error": error, "error_description": description})


class Args:
    """Case-insensitive view of a JSON body or query string, with Booker's value parsing."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = {key.lower(): value for key, value in values.items()}

    def raw(self, name: str) -> Any:
        value = self._values.get(name.lower())
        return None if value == "" else value

    def integer(self, name: str, required: bool = False) -> int | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise ArgumentProblem(name, f"{name} is required.")
            return None
        if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
            raise ArgumentProblem(name, f"{name} must be an integer, not {value!r}.")
        return int(str(value).strip())

    def flag(self, name: str) -> bool:
        value = self.raw(name)
        if value is None or isinstance(value, bool):
            return bool(value)
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0"):
            raise ArgumentProblem(name, f"{name} must be true or false, not {value!r}.")
        return text in ("true", "1")

    def moment(self, name: str) -> datetime | None:
        """An ISO date-time with offset, ``-07:00`` or ``-0700`` style."""
        value = self.raw(name)
        if value is None:
            return None
        try:
            moment = read_date(str(value), EASTERN)
        except BookerDateError as exc:
            raise ArgumentProblem(name, f"{name}: {exc}; send ISO-8601 with an offset.") from exc
        if moment is None or not moment.anchored or str(value).strip().startswith("/"):
            raise ArgumentProblem(name, f"{name}: {value!r} has no offset; send ISO-8601 with an "
                                        "offset.")
        return moment.instant

    def day(self, name: str) -> date | None:
        """``YYYY-MM-DD`` (or an ISO date-time) or the legacy ``/Date(ms)/`` (midnight Eastern)."""
        value = self.raw(name)
        if value is None:
            return None
        try:
            moment = read_date(str(value), EASTERN)  # legacy: midnight Eastern
        except BookerDateError as exc:
            raise ArgumentProblem(name, f"{name} is not a date: {value!r}.") from exc
        return None if moment is None else moment.written.date()


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # e.g. "/v4.1/merchant/customer/{CustomerID}/memberships"
    scope: str  # "token" | "context" | "brand" | "location"
    handler: Callable[..., Reply]
    pattern: re.Pattern = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>\\d+)", re.escape(self.template))
        object.__setattr__(self, "pattern", re.compile(f"^{regex}/?$", re.IGNORECASE))

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


class BookerApi:
    """Answers one parsed request; every reply is a ``Reply`` (never an exception)."""

    def __init__(self, settings: SandboxSettings, dataset: SandboxDataset) -> None:
        self.settings, self.dataset = settings, dataset
        self.signer = TokenSigner(settings.token_lifetime_s)
        self._newest: dict[int | None, str] = {}  # context (None: brand) -> jti of its newest token
        cap = settings.faults.page_cap
        self.page_cap = min(settings.page_cap, cap) if cap else settings.page_cap
        # A lower cap for one query (the server's variants draw one); None: ``page_cap``.
        self.page_cap_for: Callable[[Request], int | None] = lambda request: None
        finds = {
            "locations": ("Results", "brand"), "customers": ("Customers", "location"),
            "employees": ("Results", "location"), "memberships": ("Results", "location"),
            "products": ("Results", "location"), "orders": ("Results", "location"),
            "rooms": ("Results", "location"), "treatments": ("Treatments", "location"),
            "appointments": ("Results", "location"),
        }
        self.routes = [
            Route("POST", "/v5/auth/connect/token", "token", self._token),
            Route("POST", "/v5/auth/context/update", "context", self._context),
            *(Route("POST", f"{PREFIX}/{name}", scope, self._find(name, key))
              for name, (key, scope) in finds.items()),
            Route("GET", f"{PREFIX}/location/{{ID}}", "brand", self._location),
            Route("GET", f"{PREFIX}/location/{{ID}}/schedule", "location", self._location_schedule),
            Route("GET", f"{PREFIX}/customer/{{CustomerID}}/memberships", "location",
                  self._customer_memberships),
            Route("GET", f"{PREFIX}/customer/{{CustomerID}}/progress_notes", "location",
                  self._progress_notes),
            Route("GET", f"{PREFIX}/employee/{{EmployeeID}}/schedule", "location",
                  self._employee_schedule),
        ]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, int]] | None:
        for route in self.routes:
            found = route.pattern.match(path)
            if found and route.method == method:
                return route, {k: int(v) for k, v in found.groupdict().items()}
        return None

    def handle(self, request: Request, route: Route, params: dict[str, int]) -> Reply:
        try:
            if route.scope == "token":
                return self._token(request)
            claims = self.claims(request)
            if claims is None:
                return failure(401, TOKEN_ERROR, "The access token is missing, invalid or expired.")
            if route.scope == "context":
                return self._context(request)
            if route.scope == "brand":
                return self._brand_call(request, route, params, claims)
            return self._location_call(request, route, params, claims)
        except ArgumentProblem as problem:
            return failure(400, ARGUMENT_ERROR, "The request has invalid arguments.",
                           [{"ArgumentName": problem.name, "ErrorMessage": problem.message}])

    # ----- auth --------------------------------------------------------------------------

    def _token(self, request: Request) -> Reply:
        content_type = request.headers.get("Content-Type", "")
        if not content_type.lower().startswith("application/x-www-form-urlencoded"):
            return oauth_error("invalid_request", "The token request must be form-encoded.")
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        expected = self.settings.credentials
        grant = form.get("grant_type")
        if not grant:
            return oauth_error("invalid_request", "The grant_type parameter is missing.")
        if grant != "personal_access_token":
            return oauth_error("unsupported_grant_type", f"grant_type {grant!r} is not supported.")
        if (form.get("client_id") != expected["client_id"]
                or form.get("client_secret") != expected["client_secret"]):
            return oauth_error("invalid_client", "The client_id or client_secret is not valid.")
        if form.get("personal_access_token") != expected["personal_access_token"]:
            return oauth_error("invalid_grant", "The personal access token is invalid or revoked.")
        if form.get("scope", "merchant") != "merchant":
            return oauth_error("invalid_scope", "Only the merchant scope is available.")
        return Reply(200, {"access_token": self._issue(None), "token_type": "Bearer",
                           "expires_in": self.settings.token_lifetime_s, "scope": "merchant"})

    def _context(self, request: Request) -> Reply:
        location_id = Args(request.query).integer("locationId", required=True)
        if location_id not in self.dataset.location_ids:
            return failure(403, 403, f"Location {location_id} is not visible to this token.")
        token = self._issue(location_id)
        return Reply(200, token if self.settings.context_reply == "string"
                     else {"access_token": token})

    def _issue(self, location_id: int | None) -> str:
        token = self.signer.issue(location_id)
        self._newest[location_id] = str(self.signer.verify(token)["jti"])
        return token

    def is_newest(self, claims: dict) -> bool:
        """Whether ``claims`` are those of the last token issued for their context."""
        return self._newest.get(claims.get("location_id")) == claims["jti"]

    def claims(self, request: Request) -> dict | None:
        """The claims of the request's genuine, unexpired token (header, body or query)."""
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        if not token and request.method == "POST":
            body = request.json
            token = body.get("access_token") if isinstance(body, dict) else None
        token = token or request.query.get("access_token")
        return self.signer.verify(str(token)) if token else None

    def _brand_call(
        self, request: Request, route: Route, params: dict[str, int], claims: dict
    ) -> Reply:
        if "location_id" in claims:
            return failure(403, 403, "This call needs the brand token, not a location token "
                                     f"(this token is for location {claims['location_id']}).")
        return route.handler(request, params)

    def _location_call(
        self, request: Request, route: Route, params: dict[str, int], claims: dict
    ) -> Reply:
        location_id = self.location_of(request, route, params)
        if claims.get("location_id") != location_id:
            held = claims.get("location_id")
            context = f"location {held}" if held else "the brand"
            return failure(403, 403, f"Location {location_id} is not the context of this token "
                                     f"(it is for {context}); call /v5/auth/context/update first.")
        return route.handler(request, params, location_id)

    @staticmethod
    def location_of(request: Request, route: Route, params: dict[str, int]) -> int:
        """The location a location-scoped call names: in its path, else ``LocationID``."""
        if "ID" in params:  # /location/{id}/schedule names its location in the path
            return params["ID"]
        source = request.json if route.method == "POST" else request.query
        if not isinstance(source, dict):
            raise ArgumentProblem("body", "The request body must be a JSON object.")
        location_id = Args(source).integer("LocationID", required=True)
        assert location_id is not None  # required=True raises instead
        return location_id

    # ----- data --------------------------------------------------------------------------

    def _find(self, name: str, rows_key: str) -> Callable[..., Reply]:
        def find(request: Request, params: dict[str, int], location_id: int | None = None
                 ) -> Reply:
            if not isinstance(request.json, dict):
                raise ArgumentProblem("body", "The request body must be a JSON object.")
            args = Args(request.json)
            number = args.integer("PageNumber")
            size = args.integer("PageSize")
            if number is not None and number < 1:
                raise ArgumentProblem("PageNumber", "PageNumber must be 1 or more.")
            if size is not None and size < 1:
                raise ArgumentProblem("PageSize", "PageSize must be 1 or more.")
            rows = self._rows(name, args, location_id)
            cap = min(self.page_cap, self.page_cap_for(request) or self.page_cap)
            size = min(size or cap, cap)
            start = ((number or 1) - 1) * size
            return Reply(200, envelope(TotalResultsCount=len(rows),
                                       **{rows_key: rows[start:start + size]}),
                         rows_key=rows_key, paged=True)

        return find

    def _rows(self, name: str, args: Args, location_id: int | None) -> list[dict]:
        data = self.dataset
        if name == "locations":
            return data.locations(shared=True)
        assert location_id is not None  # location scope guarantees it
        if name == "customers":
            kind = args.raw("CustomerRecordType")
            kind = kind.get("ID") if isinstance(kind, dict) else kind
            if kind is not None and Args({"t": kind}).integer("t") != 1:
                return []
            return data.customers_between(location_id, args.moment("FromDateLastModifiedOffset"),
                                          args.moment("ToDateLastModifiedOffset"), shared=True)
        if name == "orders":
            return data.orders_between(location_id, args.moment("FromDateCreatedOffset"),
                                       args.moment("ToDateCreatedOffset"), shared=True)
        if name == "appointments":
            return data.appointments_between(location_id, args.moment("FromStartDateOffset"),
                                             args.moment("ToStartDateOffset"), shared=True)
        if name == "employees":
            return data.employees(location_id, args.flag("IgnoreFreelancers"),
                                  args.flag("OnlyIncludeActiveEmployees"), shared=True)
        if name == "memberships":
            return data.memberships(location_id, args.flag("IncludeExpired"), shared=True)
        return getattr(data, name)(location_id, shared=True)  # products, rooms, treatments

    def _location(self, request: Request, params: dict[str, int]) -> Reply:
        if params["ID"] not in self.dataset.location_ids:
            return failure(404, 404, f"Location {params['ID']} was not found.")
        return Reply(200, {**envelope(), **self.dataset.location(params["ID"], shared=True)},
                     record_body=True)

    def _location_schedule(
        self, request: Request, params: dict[str, int], location_id: int
    ) -> Reply:
        defaults, start, end = _schedule_args(Args(request.query))
        rows = self.dataset.location_schedule(location_id, start, end, defaults)
        return Reply(200, envelope(LocationDaySchedules=rows), rows_key="LocationDaySchedules")

    def _employee_schedule(
        self, request: Request, params: dict[str, int], location_id: int
    ) -> Reply:
        defaults, start, end = _schedule_args(Args(request.query))
        try:
            rows = self.dataset.employee_schedule(location_id, params["EmployeeID"], start, end,
                                                  defaults)
        except KeyError:
            return failure(404, 404, f"Employee {params['EmployeeID']} was not found at "
                                     f"location {location_id}.")
        return Reply(200, envelope(EmployeeDaySchedules=rows), rows_key="EmployeeDaySchedules")

    def _customer_memberships(
        self, request: Request, params: dict[str, int], location_id: int
    ) -> Reply:
        expired = Args(request.query).flag("IncludeExpired")
        return self._customer_rows(params["CustomerID"], location_id, lambda c: (
            self.dataset.customer_memberships(location_id, c, expired, shared=True)))

    def _progress_notes(self, request: Request, params: dict[str, int], location_id: int) -> Reply:
        return self._customer_rows(params["CustomerID"], location_id, lambda c: (
            self.dataset.progress_notes(location_id, c, shared=True)))

    @staticmethod
    def _customer_rows(
        customer_id: int, location_id: int, read: Callable[[int], list[dict]]
    ) -> Reply:
        try:
            rows = read(customer_id)
        except KeyError:
            return failure(404, 404, f"Customer {customer_id} was not found at "
                                     f"location {location_id}.")
        return Reply(200, envelope(Results=rows), rows_key="Results")


def _schedule_args(args: Args) -> tuple[bool, date | None, date | None]:
    defaults = args.flag("getDefaultDaySchedule")
    start, end = args.day("fromDate"), args.day("toDate")
    if defaults:
        return True, None, None
    if start is None or end is None:
        missing = "fromDate" if start is None else "toDate"
        raise ArgumentProblem(missing, f"{missing} is required unless getDefaultDaySchedule=true.")
    if end < start:
        raise ArgumentProblem("toDate", "toDate must not be before fromDate.")
    return False, start, end
