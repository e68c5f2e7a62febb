"""No credential or token value may reach an exception, a traceback or a log line.

Every error path runs with distinctive secret values, and the server echoes them back in its
error text, as a careless gateway might.
"""

from __future__ import annotations

import logging
import traceback

import pytest
import requests
import responses

from booker_assets.client import (
    CONTEXT_PATH,
    LOCATIONS_PATH,
    TOKEN_PATH,
    BookerClient,
    BookerResource,
)
from booker_assets.errors import BookerError

BASE = "https://booker.test"
ORDERS = "/v4.1/merchant/orders"
CLIENT_SECRET = "cs-Zq81xWv0"
SUBSCRIPTION_KEY = "sk-Hh27pLm4"
PAT = "pat-Rr55tYu9"
# JWT-shaped (header.payload.signature) without exp: the client falls back to expires_in.
BRAND_TOKEN = "eyJhbGciOiJub25lIn0.eyJ0YWciOiJicmFuZC1LazMxIn0.sigBrandKk31"
LOCATION_TOKEN = "eyJhbGciOiJub25lIn0.eyJ0YWciOiJsb2MtSmo2MiJ9.sigLocJj62"
SECRETS = (CLIENT_SECRET, SUBSCRIPTION_KEY, PAT, BRAND_TOKEN, LOCATION_TOKEN)
ECHO = " ".join(SECRETS)  # what a leaky server says back


def client() -> BookerClient:
    resource = BookerResource(client_id="cid", client_secret=CLIENT_SECRET,
                              subscription_key=SUBSCRIPTION_KEY, personal_access_token=PAT,
                              base_url=BASE, max_retries=2)
    return BookerClient(resource, sleep=lambda seconds: None)


def token_ok() -> None:
    responses.post(BASE + TOKEN_PATH, json={"access_token": BRAND_TOKEN, "expires_in": 1800})


def location_ok() -> None:
    responses.post(BASE + CONTEXT_PATH, json=LOCATION_TOKEN)


def orders(**reply) -> None:
    responses.post(BASE + ORDERS, **reply)


SCENARIOS = {
    "invalid_client": lambda: responses.post(
        BASE + TOKEN_PATH, status=400,
        json={"error": "invalid_client", "error_description": f"bad secret {ECHO}"}),
    "invalid_grant": lambda: responses.post(
        BASE + TOKEN_PATH, status=400,
        json={"error": "invalid_grant", "error_description": f"bad token {ECHO}"}),
    "subscription_key": lambda: responses.post(
        BASE + TOKEN_PATH, status=401,
        json={"statusCode": 401, "message": f"invalid subscription key {ECHO}"}),
    "second_401": lambda: (token_ok(), location_ok(),
                           orders(status=401, json={"Message": f"expired {ECHO}"})),
    "error_code_1000_twice": lambda: (token_ok(), location_ok(), orders(json={
        "IsSuccess": False, "ErrorCode": 1000, "ErrorMessage": f"Invalid token {ECHO}"})),
    "403_location": lambda: (token_ok(), responses.post(
        BASE + CONTEXT_PATH, status=403, json={"IsSuccess": False, "ErrorMessage": ECHO})),
    "403_data": lambda: (token_ok(), location_ok(), orders(
        status=403, json={"IsSuccess": False, "ErrorMessage": f"forbidden {ECHO}"})),
    "argument_error": lambda: (token_ok(), location_ok(), orders(status=400, json={
        "IsSuccess": False, "ArgumentErrors": [{"ArgumentName": "access_token",
                                                "ErrorMessage": ECHO}]})),
    "500_after_retries": lambda: (token_ok(), location_ok(), orders(status=500, body=ECHO)),
    "malformed_json": lambda: (token_ok(), location_ok(), orders(body=f'{{"x": "{ECHO}"')),
    "connection_error": lambda: (token_ok(), location_ok(),
                                 orders(body=requests.ConnectionError(ECHO))),
    "wrong_shape": lambda: (token_ok(), location_ok(),
                            orders(json={"IsSuccess": True, "Results": ECHO})),
}


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize("name", list(SCENARIOS))
@responses.activate
def test_error_paths_leak_no_secret(name, caplog):
    caplog.set_level(logging.DEBUG)
    SCENARIOS[name]()
    booker = client()

    with pytest.raises(BookerError) as info:
        booker.find(ORDERS, "Results", location_id=1002, report="orders")

    error = info.value
    assert "orders" in str(error) or "token" in str(error)
    assert_clean(str(error))
    assert_clean(repr(error))
    assert_clean("".join(traceback.format_exception(error)))
    for record in caplog.records:
        assert_clean(record.getMessage())
    assert_clean(caplog.text)


@pytest.mark.parametrize("name", ["invalid_client", "invalid_grant", "subscription_key"])
@responses.activate
def test_connection_check_messages_leak_no_secret(name):
    responses.get(BASE + "/", status=404)
    SCENARIOS[name]()

    checks = client().check_connection()

    assert not all(check.ok for check in checks)
    for check in checks:
        assert_clean(check.message)


@responses.activate
def test_retry_log_names_cause_and_wait_but_no_secret(caplog):
    caplog.set_level(logging.INFO, logger="booker_assets.client")
    token_ok()
    responses.post(BASE + LOCATIONS_PATH, status=429, headers={"Retry-After": "3"})
    responses.post(BASE + LOCATIONS_PATH, json={"IsSuccess": True, "Results": [],
                                                "TotalResultsCount": 0})

    assert client().locations() == []

    (line,) = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert line == "locations, page 1: HTTP 429; retry 1/2 in 3.00 s"


def test_resource_repr_hides_credentials():
    resource = BookerResource(client_id="cid", client_secret=CLIENT_SECRET,
                              subscription_key=SUBSCRIPTION_KEY, personal_access_token=PAT)
    assert_clean(repr(resource))
    assert_clean(str(resource))
