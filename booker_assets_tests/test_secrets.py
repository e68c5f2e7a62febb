"""No credential or token value may reach an exception, a traceback or a log line.

Every error path runs with distinctive secret values, and the server echoes them back in its
error text, as a careless gateway might. ``BOOKER_PII=hash`` is a keyed hash whose key stays out
of ``Settings``' repr and every error.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import traceback
from datetime import date

import pytest
import requests
import responses

from booker_assets.api.client import (
    CONTEXT_PATH,
    LOCATIONS_PATH,
    TOKEN_PATH,
    BookerClient,
    BookerResource,
)
from booker_assets.catalogue.reports import TABLES
from booker_assets.errors import BookerConfigError, BookerError
from booker_assets.load.pii import PiiPolicy, protect_pii
from booker_assets.settings import PiiKey, load_settings

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
    caplog.set_level(logging.INFO, logger="booker_assets.api.client")
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


# ----- BOOKER_PII=hash: a keyed hash ----------------------------------------------------------

PII_KEY = "pk-Xy73Qa19Lm" * 3
OTHER_KEY = "ok-Tb40Wc82Zr" * 3
NEW_KEY_COMMAND = 'python -c "import secrets; print(secrets.token_hex(32))"'
COLUMNS = TABLES["customers"].pii
ROW = {"id": 7, "first_name": "Ann", "email": "ann@example.com", "cell_phone": "555-0101",
       "home_phone": None, "address_city": "Tulsa", "date_of_birth": date(1990, 1, 2)}
PERSONAL = [c for c, v in ROW.items() if c.startswith(COLUMNS) and v is not None]


def hashed(key: str, row: dict = ROW) -> dict:
    return protect_pii(row, COLUMNS, PiiPolicy("hash", PiiKey(key)))


def test_pii_hash_is_hmac_sha256_of_the_key_not_a_plain_hash():
    row = hashed(PII_KEY)
    for column in PERSONAL:
        text = str(ROW[column]).strip().lower().encode()
        assert row[column] == hmac.new(PII_KEY.encode(), text, hashlib.sha256).hexdigest()
        assert row[column] != hashlib.sha256(text).hexdigest()  # the dictionary-attackable one
    assert row["home_phone"] is None
    assert (row["id"], row["first_name"]) == (7, "Ann")


def test_pii_hash_differs_by_key_and_is_stable_for_one_key():
    first, again, other = hashed(PII_KEY), hashed(PII_KEY), hashed(OTHER_KEY)
    assert first == again  # a new PiiKey from the same secret: joins across loads hold
    assert all(first[c] != other[c] for c in PERSONAL)
    # Booker's spelling of the same email may vary between loads: still one value.
    assert hashed(PII_KEY, ROW | {"email": " Ann@Example.COM "})["email"] == first["email"]


def test_pii_drop_never_hashes_even_with_a_key():
    dropped = protect_pii(ROW, COLUMNS, PiiPolicy("drop", PiiKey(PII_KEY)))
    assert dropped == {"id": 7, "first_name": "Ann"}


def _env(tmp_path, **values) -> dict[str, str]:
    return {"BOOKER_LOCATION_IDS": "1001", "BOOKER_DUCKDB_PATH": str(tmp_path / "b.duckdb"),
            **values}


def test_pii_key_is_loaded_from_the_environment_and_never_shown(tmp_path):
    settings = load_settings(_env(tmp_path, BOOKER_PII="hash", BOOKER_PII_KEY=f" {PII_KEY}\n"))
    assert settings.pii == "hash" and settings.pii_key == PiiKey(PII_KEY)
    policy = PiiPolicy.of_settings(settings)
    for text in (str(settings), repr(settings), f"{policy}", repr(settings.pii_key)):
        assert PII_KEY not in text and PII_KEY[:12] not in text
    assert "PiiKey(<redacted>)" in repr(settings)


def test_pii_hash_without_key_fails_at_load_naming_cause_and_fix(tmp_path):
    with pytest.raises(BookerConfigError) as info:
        load_settings(_env(tmp_path, BOOKER_PII="hash", BOOKER_PII_KEY="  "))
    message = str(info.value)
    print(f"\n{message}")
    assert message.startswith("BOOKER_PII=hash needs BOOKER_PII_KEY")
    assert f"Fix: set BOOKER_PII_KEY to the output of `{NEW_KEY_COMMAND}`" in message
    # Nor can code bypass load_settings with a bare "hash" and get the unkeyed digest.
    with pytest.raises(BookerConfigError, match="needs BOOKER_PII_KEY"):
        protect_pii(ROW, COLUMNS, "hash")


def test_short_pii_key_is_refused_without_echoing_it(tmp_path):
    short = "pk-Short9x"
    with pytest.raises(BookerConfigError) as info:
        load_settings(_env(tmp_path, BOOKER_PII="hash", BOOKER_PII_KEY=short))
    assert "shorter than 32 characters" in str(info.value)
    assert NEW_KEY_COMMAND in str(info.value)
    assert short not in "".join(traceback.format_exception(info.value))


def test_pii_key_is_ignored_unless_hashing(tmp_path):
    settings = load_settings(_env(tmp_path, BOOKER_PII="drop", BOOKER_PII_KEY="short"))
    assert (settings.pii, settings.pii_key) == ("drop", None)
    assert PiiPolicy.of_settings(settings) == PiiPolicy("drop")
