"""BookerClient against `responses`: auth, envelope, retries, paging, results keys, limits."""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from urllib.parse import parse_qs

import dagster as dg
import pytest
import requests
import responses
from responses import matchers

from booker_assets import cli
from booker_assets.api.client import (
    CONTEXT_PATH,
    LOCATIONS_PATH,
    TOKEN_PATH,
    BookerClient,
    BookerResource,
    ConnectionCheck,
)
from booker_assets.api.ratelimit import TokenBucket
from booker_assets.api.replies import FIX_LOCATION
from booker_assets.defs.partitions import LOCATIONS_PARTITIONS
from booker_assets.errors import (
    BookerConfigError,
    BookerCountMismatch,
    BookerCredentialsError,
    BookerRequestError,
    BookerResponseError,
    BookerTransientError,
)

BASE = "https://booker.test"
ORDERS = "/v4.1/merchant/orders"
START = 1_750_000_000.0


def jwt(exp: float, tag: str = "brand") -> str:
    """A JWT-shaped token whose unverified payload carries ``exp``."""
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'exp': exp, 'scope': 'merchant', 'tag': tag})}.sig"


class FakeTime:
    """Wall clock, monotonic clock and sleep in one: sleeping advances both clocks."""

    def __init__(self) -> None:
        self.now = START
        self.waits: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - START

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def make_client(**overrides) -> tuple[BookerClient, FakeTime]:
    settings = {"requests_per_second": 1000.0, "burst": 1000, "max_retries": 6, **overrides}
    resource = BookerResource(
        client_id="cid", client_secret="csecret", subscription_key="skey",
        personal_access_token="pat", base_url=BASE, **settings,
    )
    fake = FakeTime()
    client = BookerClient(resource, clock=fake.time, monotonic=fake.monotonic, sleep=fake.sleep,
                          rng=random.Random(7))
    return client, fake


def envelope(rows: list | None = None, total: int | None = None, key: str = "Results") -> dict:
    body = {"IsSuccess": True, "ErrorCode": 0, "ErrorMessage": None, "ArgumentErrors": None}
    if rows is not None:
        body[key] = rows
    if total is not None:
        body["TotalResultsCount"] = total
    return body


def add_token(token: str | None = None, expires_in: int = 1800) -> None:
    responses.post(BASE + TOKEN_PATH, json={"access_token": token or jwt(START + 1800),
                                            "token_type": "Bearer", "expires_in": expires_in})


def calls_to(path: str) -> list[responses.Call]:
    return [call for call in responses.calls if call.request.path_url.split("?")[0] == path]


def bearer(call: responses.Call) -> str:
    return call.request.headers["Authorization"].removeprefix("Bearer ")


def body_of(call: responses.Call) -> dict:
    return json.loads(call.request.body)


class Overlap:
    """How many callers are inside ``hold`` at once; ``peak`` is the most seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self.peak = 0

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._inside += 1
            self.peak = max(self.peak, self._inside)
        time.sleep(seconds)
        with self._lock:
            self._inside -= 1


# ----- authentication ----------------------------------------------------------------------------

@responses.activate
def test_token_request_is_a_form_with_the_subscription_key():
    brand = jwt(START + 1800)
    add_token(brand)
    responses.post(BASE + LOCATIONS_PATH, json=envelope([{"ID": 1}], 1))
    client, _ = make_client()

    assert client.locations() == [{"ID": 1}]

    token_call, data_call = responses.calls
    assert token_call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_call.request.body) == {
        "grant_type": ["personal_access_token"], "client_id": ["cid"],
        "client_secret": ["csecret"], "personal_access_token": ["pat"], "scope": ["merchant"],
    }
    assert token_call.request.headers["Ocp-Apim-Subscription-Key"] == "skey"
    assert "Authorization" not in token_call.request.headers
    assert data_call.request.headers["Ocp-Apim-Subscription-Key"] == "skey"
    assert bearer(data_call) == brand
    assert brand not in data_call.request.url and brand not in data_call.request.body.decode()
    assert body_of(data_call) == {"UsePaging": True, "PageNumber": 1, "PageSize": 100}


@pytest.mark.parametrize("reply", ["bare", "object"])
@responses.activate
def test_location_token_exchange_accepts_both_reply_shapes(reply):
    brand, location = jwt(START + 1800), jwt(START + 1800, "loc")
    add_token(brand)
    responses.post(
        BASE + CONTEXT_PATH, json=location if reply == "bare" else {"access_token": location},
        match=[matchers.query_param_matcher({"locationId": "1002"})],
    )
    responses.post(BASE + ORDERS, json=envelope([{"ID": 5}], 1))
    client, _ = make_client()

    result = client.find(ORDERS, "Results", {"FromDateCreatedOffset": "x"}, location_id="1002")

    assert result.rows == [{"ID": 5}]
    context_call = calls_to(CONTEXT_PATH)[0]
    assert bearer(context_call) == brand
    assert context_call.request.body is None
    assert "Content-Type" not in context_call.request.headers
    data_call = calls_to(ORDERS)[0]
    assert bearer(data_call) == location
    assert body_of(data_call)["LocationID"] == 1002
    assert body_of(data_call)["FromDateCreatedOffset"] == "x"
    assert client.stats.snapshot()["tokens"] == 2


@pytest.mark.parametrize(("token", "expires_in", "renew_after"), [
    (jwt(START + 600), 99999, 600 - 60),  # exp wins over expires_in
    ("opaque-token", 300, 300 - 60),
], ids=["jwt-exp", "expires_in-when-not-a-jwt"])
@responses.activate
def test_token_renewed_about_60_seconds_before_it_expires(token, expires_in, renew_after):
    add_token(token, expires_in=expires_in)
    responses.post(BASE + LOCATIONS_PATH, json=envelope([], 0))
    client, fake = make_client()

    client.locations()
    fake.now = START + renew_after - 1
    client.locations()
    assert len(calls_to(TOKEN_PATH)) == 1
    fake.now = START + renew_after + 1
    client.locations()
    assert len(calls_to(TOKEN_PATH)) == 2


EXPIRED = {
    "http-401": {"status": 401, "json": {"Message": "expired"}},
    "error-code-1000": {"json": {"IsSuccess": False, "ErrorCode": 1000,
                                 "ErrorMessage": "Invalid access token"}},
}


@pytest.mark.parametrize("expiries", [1, 2, 3])
@pytest.mark.parametrize("expired", list(EXPIRED))
@responses.activate
def test_expired_token_renewed_and_call_replayed(expired, expiries):
    tokens = [jwt(START + 1800, f"token-{n}") for n in range(expiries + 1)]
    for token in tokens:
        add_token(token)
    for _ in range(expiries):
        responses.post(BASE + LOCATIONS_PATH, **EXPIRED[expired])
    responses.post(BASE + LOCATIONS_PATH, json=envelope([{"ID": 1}], 1))
    client, fake = make_client()

    assert client.locations() == [{"ID": 1}]
    assert [bearer(call) for call in calls_to(LOCATIONS_PATH)] == tokens
    assert len(calls_to(TOKEN_PATH)) == expiries + 1
    assert fake.waits == []  # a renewal is not a retry: no backoff


@pytest.mark.parametrize("expired", list(EXPIRED))
@responses.activate
def test_token_refused_after_three_renewals_is_a_credentials_error(expired):
    add_token()
    responses.post(BASE + LOCATIONS_PATH, **EXPIRED[expired])
    client, _ = make_client()

    with pytest.raises(BookerCredentialsError) as info:
        client.locations()
    assert info.value.credential == "personal_access_token"
    assert "BOOKER_PERSONAL_ACCESS_TOKEN" in str(info.value)
    assert "refused the token 4 times in a row" in str(info.value)
    assert len(calls_to(LOCATIONS_PATH)) == 4
    assert len(calls_to(TOKEN_PATH)) == 4  # the first token and three renewals


@pytest.mark.parametrize(
    ("reply", "credential", "env_var"),
    [
        ({"status": 400, "json": {"error": "invalid_client"}}, "client_id/client_secret",
         "BOOKER_CLIENT_SECRET"),
        ({"status": 400, "json": {"error": "invalid_grant"}}, "personal_access_token",
         "BOOKER_PERSONAL_ACCESS_TOKEN"),
        ({"status": 401, "json": {"statusCode": 401, "message": "Access denied due to invalid "
                                  "subscription key. Make sure to provide a valid key."}},
         "subscription_key", "BOOKER_SUBSCRIPTION_KEY"),
    ],
    ids=["invalid_client", "invalid_grant", "subscription-key"],
)
@responses.activate
def test_token_errors_name_the_credential_and_are_not_retried(reply, credential, env_var):
    responses.post(BASE + TOKEN_PATH, **reply)
    client, fake = make_client()

    with pytest.raises(BookerCredentialsError) as info:
        client.locations()
    assert info.value.credential == credential
    assert env_var in str(info.value)
    assert len(responses.calls) == 1
    assert fake.waits == []


@responses.activate
def test_token_stampede_prevented_across_threads():
    def slow_token(request):
        time.sleep(0.05)
        return 200, {}, json.dumps({"access_token": jwt(START + 1800), "expires_in": 1800})

    responses.add_callback(responses.POST, BASE + TOKEN_PATH, callback=slow_token)
    responses.post(BASE + LOCATIONS_PATH, json=envelope([{"ID": 1}], 1))
    client, _ = make_client()

    assert client.map(lambda _: client.locations(), range(8)) == [[{"ID": 1}]] * 8
    assert len(calls_to(TOKEN_PATH)) == 1


# ----- retries -----------------------------------------------------------------------------------

JITTER = (0.0, 0.5)  # full jitter of a first retry
RETRYABLE = {
    "503": ({"status": 503, "body": "<html>busy</html>"}, "http_503", JITTER),
    "504": ({"status": 504}, "http_504", JITTER),
    "500": ({"status": 500}, "http_500", JITTER),
    "empty-object": ({"json": {}}, "empty_body", JITTER),
    "connection-error": ({"body": requests.ConnectionError("reset")}, "connection", JITTER),
    "read-timeout": ({"body": requests.ReadTimeout("slow")}, "timeout", JITTER),
    "html": ({"body": "<html>gateway</html>", "content_type": "text/html"}, "malformed", JITTER),
    "truncated-json": ({"body": '{"IsSuccess": true, "Results": [', "content_type":
                        "application/json"}, "malformed", JITTER),
    "429-retry-after": ({"status": 429, "headers": {"Retry-After": "7"}, "json": {
        "statusCode": 429, "message": "Rate limit is exceeded."}}, "http_429", (7.0, 7.0)),
}


@pytest.mark.parametrize("name", list(RETRYABLE))
@responses.activate
def test_transient_fault_is_retried_with_backoff(name):
    fault, kind, (shortest, longest) = RETRYABLE[name]
    add_token()
    responses.post(BASE + ORDERS, **fault)
    responses.post(BASE + ORDERS, json=envelope([{"ID": 1}], 1))
    client, fake = make_client()

    assert client.find(ORDERS, "Results").rows == [{"ID": 1}]
    assert len(calls_to(ORDERS)) == 2
    assert len(fake.waits) == 1 and shortest <= fake.waits[0] <= longest
    assert client.stats.snapshot()["retries"] == {kind: 1}


@responses.activate
def test_retries_exhausted_error_names_report_location_page_and_cause():
    add_token()
    responses.post(BASE + CONTEXT_PATH, json=jwt(START + 1800, "loc"))
    responses.post(BASE + ORDERS, json=envelope([{"ID": 1}, {"ID": 2}], 6))
    responses.post(BASE + ORDERS, json=envelope([{"ID": 3}, {"ID": 4}], 6))
    responses.post(BASE + ORDERS, status=503)
    client, fake = make_client(page_size=2, max_in_flight=1)

    with pytest.raises(BookerTransientError) as info:
        client.find(ORDERS, "Results", location_id=1002, report="orders")
    assert str(info.value) == "orders, location 1002, page 3: HTTP 503 after 7 attempts"
    assert len(calls_to(ORDERS)) == 2 + 7
    caps = [min(30.0, 0.5 * 2**n) for n in range(6)]
    assert len(fake.waits) == 6
    assert all(0 <= wait <= cap for wait, cap in zip(fake.waits, caps, strict=True))


@responses.activate
def test_malformed_body_becomes_a_response_error_after_retries():
    add_token()
    responses.post(BASE + ORDERS, body="<html>oops</html>", status=200)
    client, _ = make_client(max_retries=2)

    with pytest.raises(BookerResponseError, match="malformed JSON body after 3 attempts"):
        client.find(ORDERS, "Results", report="orders")
    assert len(calls_to(ORDERS)) == 3


FATAL = {
    "400": ({"status": 400, "json": {"IsSuccess": False, "ErrorCode": 200, "ArgumentErrors": [
        {"ArgumentName": "PageSize", "ErrorMessage": "must be at most 100"}]}},
        BookerRequestError, "argument PageSize: must be at most 100"),
    "403": ({"status": 403, "json": {"IsSuccess": False, "ErrorMessage": "no access"}},
            BookerRequestError, "HTTP 403: no access"),
    "404": ({"status": 404, "json": {"IsSuccess": False, "ErrorCode": 404,
                                     "ErrorMessage": "Order 5 was not found."}},
            BookerRequestError, "HTTP 404: Order 5 was not found.; ErrorCode 404"),
    "argument-errors": ({"json": {"IsSuccess": False, "ErrorCode": 200, "ArgumentErrors": [
        {"ArgumentName": "FromDateCreatedOffset", "ErrorMessage": "is required"}]}},
        BookerRequestError, "argument FromDateCreatedOffset: is required"),
    "wrong-shape": ({"json": envelope(5, 5)}, BookerResponseError, "'Results' is int, not a list"),
    "missing-key": ({"json": envelope([], 0, key="Orders")}, BookerResponseError,
                    "reply has no 'Results'"),
}


@pytest.mark.parametrize("name", list(FATAL))
@responses.activate
def test_fatal_reply_is_not_retried(name):
    reply, error, text = FATAL[name]
    add_token()
    responses.post(BASE + ORDERS, **reply)
    client, fake = make_client()

    with pytest.raises(error) as info:
        client.find(ORDERS, "Results", report="orders")
    assert text in str(info.value)
    assert str(info.value).startswith("orders, page 1: ")
    assert len(calls_to(ORDERS)) == 1
    assert fake.waits == []


INVISIBLE = {
    "403-location-token": (
        "POST", CONTEXT_PATH, {"status": 403, "json": {
            "IsSuccess": False, "ErrorMessage": "Location 77 not in brand"}},
        lambda client: client.find(ORDERS, "Results", location_id=77, report="orders"),
        "HTTP 403: Location 77 not in brand"),
    "403-get-location": (
        "GET", "/v4.1/merchant/location/77", {"status": 403, "json": {
            "IsSuccess": False, "ErrorMessage": "Location 77 is not visible to this token."}},
        lambda client: client.location(77), "HTTP 403: Location 77 is not visible"),
    "404-get-location": (
        "GET", "/v4.1/merchant/location/77", {"status": 404, "json": {
            "IsSuccess": False, "ErrorCode": 404, "ErrorMessage": "Location 77 was not found."}},
        lambda client: client.location(77), "HTTP 404: Location 77 was not found."),
    "not-found-envelope-get-location": (
        "GET", "/v4.1/merchant/location/77", {"json": {
            "IsSuccess": False, "ErrorCode": 2, "ErrorMessage": "Location not found"}},
        lambda client: client.location(77), "Booker refused the request: Location not found"),
}


@pytest.mark.parametrize("name", list(INVISIBLE))
@responses.activate
def test_location_the_token_cannot_see_says_how_to_fix_the_location_list(name):
    method, path, reply, call, server_text = INVISIBLE[name]
    add_token()
    responses.add(method, BASE + path, **reply)
    client, fake = make_client()

    with pytest.raises(BookerRequestError) as info:
        call(client)
    message = str(info.value)
    assert "location 77 is not visible to this token (or does not exist)" in message
    assert server_text in message
    assert info.value.fix == FIX_LOCATION  # one fix text for 403 and 404
    assert "BOOKER_LOCATION_IDS" in message and "booker-assets discover-locations" in message
    assert len(calls_to(path)) == 1
    assert fake.waits == []


# ----- paging ------------------------------------------------------------------------------------

def paged_client(pages: dict[int, list[dict]], total: int | None,
                 page_size: int) -> BookerClient:
    """A client, a brand token and ORDERS serving ``pages`` by PageNumber (missing: empty)."""
    def reply(request):
        number = json.loads(request.body)["PageNumber"]
        return 200, {}, json.dumps(envelope(pages.get(number, []), total))

    add_token()
    responses.add_callback(responses.POST, BASE + ORDERS, callback=reply)
    return make_client(page_size=page_size)[0]


def rows(*ids: int) -> list[dict]:
    return [{"ID": i} for i in ids]


@pytest.mark.parametrize(("pages", "total", "ids"), [
    ({1: rows(1, 2), 2: rows(3, 4), 3: rows(5, 6), 4: rows(7)}, 7, [1, 2, 3, 4, 5, 6, 7]),
    ({1: rows(1, 2, 3), 2: rows(4), 3: rows(5, 6)}, None, [1, 2, 3, 4, 5, 6]),
], ids=["until-total-results-count", "without-a-count-until-an-empty-page"])
@responses.activate
def test_short_pages_are_not_the_end(pages, total, ids):
    client = paged_client(pages, total, page_size=3)

    result = client.find(ORDERS, "Results")

    assert [row["ID"] for row in result.rows] == ids
    assert (result.total, result.pages, result.requests) == (total, 4, 4)
    assert sorted(body_of(call)["PageNumber"] for call in calls_to(ORDERS)) == [1, 2, 3, 4]
    assert all(body_of(call)["PageSize"] == 3 for call in calls_to(ORDERS))


@responses.activate
def test_remaining_pages_fetched_concurrently_in_server_order():
    add_token()
    overlap = Overlap()

    def reply(request):
        overlap.hold(0.03)
        number = json.loads(request.body)["PageNumber"]
        return 200, {}, json.dumps(envelope(rows(2 * number - 1, 2 * number), 20))

    responses.add_callback(responses.POST, BASE + ORDERS, callback=reply)
    client, _ = make_client(page_size=2, max_in_flight=3)

    result = client.find(ORDERS, "Results")

    assert [row["ID"] for row in result.rows] == list(range(1, 21))
    assert (result.pages, result.requests) == (10, 10)
    assert overlap.peak == 3


@responses.activate
def test_requests_in_flight_bounded_across_caller_threads():
    add_token()
    overlap = Overlap()

    def reply(request):
        overlap.hold(0.03)
        return 200, {}, json.dumps(envelope(rows(1), 1))

    responses.add_callback(responses.POST, BASE + LOCATIONS_PATH, callback=reply)
    client, _ = make_client(max_in_flight=2)
    callers = [threading.Thread(target=client.locations) for _ in range(6)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()

    assert len(calls_to(LOCATIONS_PATH)) == 6
    assert overlap.peak == 2


@pytest.mark.parametrize(("pages", "total", "read"), [
    ({1: rows(1, 2), 2: rows(3)}, 5, 3),
    ({1: rows(1, 2), 2: rows(3, 4)}, 3, 4),
    ({}, 2, 0),
], ids=["fewer", "more", "empty-first-page"])
@responses.activate
def test_count_mismatch_raises(pages, total, read):
    client = paged_client(pages, total, page_size=2)

    with pytest.raises(BookerCountMismatch, match=f"read {read} rows .* TotalResultsCount {total}"):
        client.find(ORDERS, "Results", report="orders")


class MovingList:
    """ORDERS paged from a list of IDs that ``move`` changes once ``after`` pages were served."""

    def __init__(self, ids: list[int], page_size: int, after: int, move) -> None:
        self.ids, self.page_size, self.after, self.move = list(ids), page_size, after, move
        self.served = 0
        self._lock = threading.Lock()

    def reply(self, request):
        number = json.loads(request.body)["PageNumber"]
        with self._lock:
            start = (number - 1) * self.page_size
            body = envelope(rows(*self.ids[start:start + self.page_size]), len(self.ids))
            self.served += 1
            if self.served == self.after:
                self.move(self.ids)
        return 200, {}, json.dumps(body)


def moving_client(moving: MovingList) -> BookerClient:
    add_token()
    responses.add_callback(responses.POST, BASE + ORDERS, callback=moving.reply)
    return make_client(page_size=moving.page_size)[0]


def add_and_delete(ids: list[int]) -> None:
    """One row added where page 1 was read, one deleted behind the pages: count unchanged."""
    ids.insert(1, 15)
    ids.remove(60)


@responses.activate
def test_page_shift_with_count_unchanged_is_read_again_without_duplicates():
    # after page 1: [10, 15, 20, 30, 40, 50]; pages 2 and 3 then read 20 twice
    moving = MovingList([10, 20, 30, 40, 50, 60], page_size=2, after=1, move=add_and_delete)
    client = moving_client(moving)

    result = client.find(ORDERS, "Results", report="orders")

    assert [row["ID"] for row in result.rows] == [10, 15, 20, 30, 40, 50]  # the list as it is
    assert (result.total, result.pages, result.reads, result.requests) == (6, 3, 2, 6)
    assert client.stats.snapshot()["retries"] == {"list_moved": 1}


@responses.activate
def test_row_deleted_between_pages_changes_the_count_and_is_read_again():
    moving = MovingList([1, 2, 3, 4, 5, 6], page_size=2, after=1, move=lambda ids: ids.remove(3))
    client = moving_client(moving)

    result = client.find(ORDERS, "Results")

    assert [row["ID"] for row in result.rows] == [1, 2, 4, 5, 6]  # 4 was not skipped
    assert (result.total, result.reads) == (5, 2)


@responses.activate
def test_a_key_read_twice_is_read_again_by_the_configured_key_field():
    add_token()
    customers = "/v4.1/merchant/customers"

    def wrapped(*ids: int) -> list[dict]:
        return [{"CustomerID": i, "Customer": {"ID": i}} for i in ids]

    reads = [{1: wrapped(1, 2), 2: wrapped(2, 3)}, {1: wrapped(1, 2), 2: wrapped(3, 4)}]
    served: list[int] = []

    def reply(request):
        number = json.loads(request.body)["PageNumber"]
        served.append(number)
        read = reads[0] if len(served) <= 2 else reads[1]
        return 200, {}, json.dumps(envelope(read[number], 4, key="Customers"))

    responses.add_callback(responses.POST, BASE + customers, callback=reply)
    client, _ = make_client(page_size=2)

    result = client.find(customers, "Customers", key_field="CustomerID")

    assert [row["CustomerID"] for row in result.rows] == [1, 2, 3, 4]
    assert (result.reads, result.requests) == (2, 4)


@responses.activate
def test_list_still_moving_after_three_reads_is_a_transient_count_mismatch():
    add_token()
    responses.post(BASE + CONTEXT_PATH, json=jwt(START + 1800, "loc"))
    pages = {1: rows(1, 2), 2: rows(2, 3)}  # 2 on both pages, every time

    def reply(request):
        number = json.loads(request.body)["PageNumber"]
        return 200, {}, json.dumps(envelope(pages.get(number, []), 4))

    responses.add_callback(responses.POST, BASE + ORDERS, callback=reply)
    client, fake = make_client(page_size=2)

    with pytest.raises(BookerCountMismatch) as info:
        client.find(ORDERS, "Results", location_id=1002, report="orders for 2025-03-01")

    message = str(info.value)
    assert message.startswith("orders for 2025-03-01, location 1002: ID 2 read twice in 2 pages")
    assert "in each of 3 reads" in message
    assert info.value.transient
    assert len(calls_to(ORDERS)) == 3 * 2  # the whole call, three times
    assert client.stats.snapshot()["retries"] == {"list_moved": 2}
    assert fake.waits == []


@responses.activate
def test_count_changing_between_pages_every_read_names_both_counts():
    add_token()
    served: list[int] = []

    def reply(request):
        number = json.loads(request.body)["PageNumber"]
        served.append(number)
        return 200, {}, json.dumps(envelope(rows(2 * number - 1, 2 * number), 4 + number - 1))

    responses.add_callback(responses.POST, BASE + ORDERS, callback=reply)
    client, _ = make_client(page_size=2)

    with pytest.raises(BookerCountMismatch,
                       match="TotalResultsCount went from 4 to 5 between pages"):
        client.find(ORDERS, "Results", report="orders")
    assert sorted(served) == [1, 1, 1, 2, 2, 2]


@responses.activate
def test_rows_without_the_key_field_are_not_checked():
    add_token()
    data = [{"CustomerID": 1, "Customer": {"ID": 1}}, {"CustomerID": 2, "Customer": {"ID": 2}}]
    responses.post(BASE + "/v4.1/merchant/customers", json=envelope(data, 2, "Customers"))
    client, _ = make_client()

    result = client.find("/v4.1/merchant/customers", "Customers")  # default key_field "ID"

    assert result.rows == data and result.reads == 1


# ----- results keys ------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["Results", "Customers", "Treatments"])
@responses.activate
def test_find_reads_the_configured_results_key(key):
    add_token()
    data = [{"CustomerID": 1, "Customer": {"ID": 1}}]
    responses.post(BASE + "/v4.1/merchant/things", json=envelope(data, 1, key))
    client, _ = make_client()

    assert client.find("/v4.1/merchant/things", key).rows == data


@pytest.mark.parametrize("key", ["LocationDaySchedules", "EmployeeDaySchedules"])
@responses.activate
def test_get_reads_schedules_with_location_id_and_location_token(key):
    add_token()
    location = jwt(START + 1800, "loc")
    responses.post(BASE + CONTEXT_PATH, json={"access_token": location})
    schedule = [{"Weekday": "Monday", "StartTime": "09:00:00", "EndTime": "17:00:00"}]
    responses.get(BASE + "/v4.1/merchant/location/9/schedule", json=envelope(schedule, key=key),
                  match=[matchers.query_param_matcher({"LocationID": "9", "fromDate":
                                                       "2025-03-01"})])
    client, _ = make_client()

    got = client.get("/v4.1/merchant/location/9/schedule", key, {"fromDate": "2025-03-01"},
                     location_id=9)

    assert got == schedule
    assert bearer(calls_to("/v4.1/merchant/location/9/schedule")[0]) == location


@pytest.mark.parametrize("wrapped", [False, True], ids=["flat", "wrapped"])
@responses.activate
def test_location_body_flat_or_wrapped_and_cached(wrapped):
    brand = jwt(START + 1800)
    add_token(brand)
    record = {"ID": 9, "BusinessName": "Spa", "TimeZone": {"Name": "Arizona"}}
    reply = {"IsSuccess": True, "Location": record} if wrapped else {"IsSuccess": True, **record}
    responses.get(BASE + "/v4.1/merchant/location/9", json=reply)
    client, _ = make_client()

    got = client.location(9)
    assert client.location("9") is got
    assert got["BusinessName"] == "Spa" and got["TimeZone"] == {"Name": "Arizona"}
    assert len(calls_to("/v4.1/merchant/location/9")) == 1
    assert bearer(calls_to("/v4.1/merchant/location/9")[0]) == brand
    assert calls_to(CONTEXT_PATH) == []


# ----- concurrency and limits --------------------------------------------------------------------

def test_map_bounds_threads_keeps_order_and_reraises_first_error():
    client, _ = make_client(max_in_flight=3)
    overlap = Overlap()

    def work(item: int) -> int:
        overlap.hold(0.02)
        if item in (4, 7):
            raise ValueError(f"bad {item}")
        return item * 10

    assert client.map(work, range(4)) == [0, 10, 20, 30]
    assert overlap.peak == 3
    with pytest.raises(ValueError, match="bad 4"):
        client.map(work, range(10))


def test_token_bucket_never_exceeds_its_rate():
    fake = FakeTime()
    bucket = TokenBucket(5.0, 3, clock=fake.monotonic, sleep=fake.sleep)
    granted = []
    for _ in range(23):
        bucket.acquire()
        granted.append(fake.monotonic())

    assert granted[:3] == [0.0, 0.0, 0.0]
    assert granted[-1] == pytest.approx(4.0)
    for i, start in enumerate(granted):
        for window in (0.5, 1.0, 2.0):
            inside = sum(1 for t in granted[i:] if t < start + window - 1e-9)
            assert inside <= 3 + 5.0 * window


def test_token_bucket_refills_only_up_to_burst():
    fake = FakeTime()
    bucket = TokenBucket(2.0, 2, clock=fake.monotonic, sleep=fake.sleep)
    bucket.acquire()
    fake.now += 100
    waits = [bucket.acquire() for _ in range(3)]
    assert waits == [0.0, 0.0, 0.5]


@responses.activate
def test_views_share_the_token_and_count_their_own_requests():
    add_token()
    responses.post(BASE + LOCATIONS_PATH, json=envelope(rows(1, 2), 2))
    client, _ = make_client()
    one, other = client.view("one"), client.view("other")
    one.locations()
    assert [r["ID"] for r in other.locations()] == [1, 2]
    assert (one.stats.requests, other.stats.requests) == (1, 1)  # each counts its own
    assert client.stats.requests == 1  # the token both share, asked once by the parent


# ----- connection check --------------------------------------------------------------------------

def checks_of_a_reachable_host() -> list[ConnectionCheck]:
    """``check_connection`` with the host answering (a 404 at ``/`` is an answer)."""
    responses.get(BASE + "/", status=404)
    client, _ = make_client()
    return client.check_connection()


@responses.activate
def test_check_connection_all_ok():
    add_token()
    responses.post(BASE + LOCATIONS_PATH, json=envelope(rows(1, 2), 2))

    checks = checks_of_a_reachable_host()

    assert [(c.name, c.ok) for c in checks] == [
        ("base URL", True), ("subscription key", True), ("client id/secret", True),
        ("personal access token", True), ("locations", True)]
    assert checks[-1].message == "the brand token sees 2 locations"


@responses.activate
def test_check_connection_names_the_wrong_credential():
    responses.post(BASE + TOKEN_PATH, status=400, json={"error": "invalid_client"})

    checks = checks_of_a_reachable_host()

    assert [(c.name, c.ok) for c in checks] == [
        ("base URL", True), ("subscription key", True), ("client id/secret", False),
        ("personal access token", False)]
    assert "BOOKER_CLIENT_ID" in checks[2].message
    assert checks[3].message == "not checked: fix the client id/secret first"


@responses.activate
def test_check_connection_unreachable_base_url():
    responses.get(BASE + "/", body=requests.ConnectionError("refused"))
    client, _ = make_client()

    (check,) = client.check_connection()

    assert not check.ok
    assert "BOOKER_BASE_URL" in check.message and BASE in check.message


# ----- command line ------------------------------------------------------------------------------

@pytest.fixture
def booker_env(monkeypatch):
    for var, value in {"BOOKER_BASE_URL": BASE, "BOOKER_CLIENT_ID": "cid",
                       "BOOKER_CLIENT_SECRET": "csecret", "BOOKER_SUBSCRIPTION_KEY": "skey",
                       "BOOKER_PERSONAL_ACCESS_TOKEN": "pat"}.items():
        monkeypatch.setenv(var, value)


@responses.activate
def test_cli_discover_locations_adds_partitions_and_writes_ids(booker_env, tmp_path, capsys,
                                                               monkeypatch):
    add_token()
    responses.post(BASE + LOCATIONS_PATH, json=envelope([
        {"ID": 1001, "BusinessName": "Downtown Spa",
         "TimeZone": {"Name": "(GMT-06:00) Central Time (US & Canada)"}},
        {"ID": 1002, "AccountName": "westside", "TimeZone": {"Name": "(GMT-07:00) Arizona"}},
    ], 2))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BOOKER_LOCATION_IDS", raising=False)
    target = tmp_path / "ids.txt"

    assert cli.main(["discover-locations", "--file", str(target)]) == 0

    assert target.read_text() == "1001\n1002\n"
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "1001\tDowntown Spa\t(GMT-06:00) Central Time (US & Canada)",
        "1002\twestside\t(GMT-07:00) Arizona"]
    assert "added location partitions: 1001, 1002" in err and "an allow-list" in err
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions(LOCATIONS_PARTITIONS) == ["1001", "1002"]


@responses.activate
def test_cli_check_connection_fails_on_a_bad_personal_access_token(booker_env, capsys):
    responses.get(BASE + "/", status=404)
    responses.post(BASE + TOKEN_PATH, status=400, json={"error": "invalid_grant"})

    assert cli.main(["check-connection"]) == 1

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("OK     base URL")
    assert lines[3].startswith("FAILED personal access token: ")
    assert "BOOKER_PERSONAL_ACCESS_TOKEN" in lines[3]


def test_resource_from_env_names_missing_variables(monkeypatch):
    monkeypatch.setenv("BOOKER_CLIENT_ID", "cid")
    for var in ("BOOKER_CLIENT_SECRET", "BOOKER_SUBSCRIPTION_KEY", "BOOKER_PERSONAL_ACCESS_TOKEN"):
        monkeypatch.delenv(var, raising=False)

    with pytest.raises(BookerConfigError, match="BOOKER_CLIENT_SECRET, BOOKER_SUBSCRIPTION_KEY, "
                                                "BOOKER_PERSONAL_ACCESS_TOKEN"):
        cli.resource_from_env()
