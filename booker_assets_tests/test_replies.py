"""classify(): every reply of the contract (§2, §3) as ok, retriable, expired or fatal."""

from __future__ import annotations

import json

import pytest
import requests

from booker_assets.api.replies import FIX_LOCATION, Reply, Scrubber, classify, fault
from booker_assets.errors import (
    BookerCredentialsError,
    BookerRequestError,
    BookerResponseError,
    BookerTransientError,
)

SCRUB = Scrubber({"sk-secret"})


def response(status: int = 200, body: object = None, *, text: str | None = None,
             headers: dict | None = None) -> requests.Response:
    reply = requests.Response()
    reply.status_code = status
    reply._content = (text if text is not None else json.dumps(body)).encode()
    reply.headers.update(headers or {})
    return reply


def data(reply: requests.Response, location_id: int | None = None) -> Reply:
    return classify(reply, where="orders, page 1", scrub=SCRUB, location_id=location_id)


def token(reply: requests.Response) -> Reply:
    return classify(reply, where="token", scrub=SCRUB, token_call=True)


ENVELOPE = {"IsSuccess": True, "ErrorCode": 0, "Results": [{"ID": 1}], "TotalResultsCount": 1}


def test_ok_data_and_token_replies_carry_the_body():
    assert data(response(body=ENVELOPE)) == Reply.ok(ENVELOPE)
    assert data(response(body="bare-token-string")).value() == "bare-token-string"
    grant = {"access_token": "a.b.c", "expires_in": 1800}
    assert token(response(body=grant)).value() == grant


@pytest.mark.parametrize(("reply", "kind", "retry_after", "final"), [
    (response(429, {"message": "Rate limit"}, headers={"Retry-After": "7"}), "http_429", 7.0,
     BookerTransientError),
    (response(429, {}), "http_429", None, BookerTransientError),
    (response(503, text="<html>busy</html>"), "http_503", None, BookerTransientError),
    (response(500), "http_500", None, BookerTransientError),
    (response(504), "http_504", None, BookerTransientError),
    (response(body={}), "empty_body", None, BookerTransientError),
    (response(text="<html>gateway</html>"), "malformed", None, BookerResponseError),
    (response(text='{"IsSuccess": true, "Results": ['), "malformed", None, BookerResponseError),
], ids=["429-retry-after", "429", "503", "500", "504", "empty-object", "html", "truncated"])
@pytest.mark.parametrize("call", [data, token], ids=["data", "token"])
def test_transient_replies_are_retriable_with_kind_and_retry_after(call, reply, kind,
                                                                    retry_after, final):
    got = call(reply)
    assert (got.outcome, got.kind, got.retry_after, got.final) == (
        "retriable", kind, retry_after, final)


@pytest.mark.parametrize(("exc", "kind"), [
    (requests.ReadTimeout("slow"), "timeout"),
    (requests.ConnectTimeout("slow"), "timeout"),
    (requests.ConnectionError("reset sk-secret"), "connection"),
    (requests.exceptions.ChunkedEncodingError("cut"), "connection"),
])
def test_transport_faults_are_retriable_and_quote_only_the_type(exc, kind):
    got = fault(exc)
    assert (got.outcome, got.kind) == ("retriable", kind)
    assert got.cause.endswith(f"({type(exc).__name__})") and "sk-secret" not in got.cause


@pytest.mark.parametrize(("reply", "cause"), [
    (response(401, {"ErrorMessage": "Token expired"}), "HTTP 401: Token expired"),
    (response(body={"IsSuccess": False, "ErrorCode": 1000, "ErrorMessage": "Invalid token"}),
     "ErrorCode 1000: Invalid token; ErrorCode 1000"),
], ids=["http-401", "error-code-1000"])
def test_refused_token_on_a_data_call_is_expired(reply, cause):
    assert data(reply) == Reply.expired(cause)


def fatal(reply: Reply) -> Exception:
    assert reply.outcome == "fatal"
    with pytest.raises(type(reply.error)) as info:
        reply.value()
    return info.value


@pytest.mark.parametrize(("reply", "credential", "text"), [
    (response(400, {"error": "invalid_client", "error_description": "bad sk-secret"}),
     "client_id/client_secret", "BOOKER_CLIENT_SECRET"),
    (response(400, {"error": "invalid_grant"}), "personal_access_token",
     "BOOKER_PERSONAL_ACCESS_TOKEN"),
    (response(401, {"statusCode": 401, "message": "Access denied due to invalid subscription "
                    "key."}), "subscription_key", "BOOKER_SUBSCRIPTION_KEY"),
], ids=["invalid_client", "invalid_grant", "subscription-key"])
def test_token_refusals_are_fatal_credentials_errors(reply, credential, text):
    error = fatal(token(reply))
    assert isinstance(error, BookerCredentialsError) and error.credential == credential
    assert text in str(error) and "sk-secret" not in str(error)


def test_token_reply_without_a_token_is_a_response_error():
    error = fatal(token(response(body={"token_type": "Bearer"})))
    assert isinstance(error, BookerResponseError) and "no access_token" in str(error)


def test_subscription_key_401_on_a_data_call_is_fatal_not_expired():
    error = fatal(data(response(401, {"message": "invalid subscription key"})))
    assert isinstance(error, BookerCredentialsError) and error.credential == "subscription_key"


def test_403_names_the_invisible_location_or_the_subscription():
    reply = response(403, {"IsSuccess": False, "ErrorMessage": "Location 77 not in brand"})
    located = fatal(data(reply, location_id=77))
    assert "location 77 is not visible to this token" in str(located)
    assert located.fix == FIX_LOCATION
    brand = fatal(data(reply))
    assert "BOOKER_SUBSCRIPTION_KEY" in brand.fix and "HTTP 403" in str(brand)


@pytest.mark.parametrize(("reply", "text", "not_found"), [
    (response(400, {"IsSuccess": False, "ArgumentErrors": [
        {"ArgumentName": "PageSize", "ErrorMessage": "must be at most 100"}]}),
     "HTTP 400: argument PageSize: must be at most 100", False),
    (response(body={"IsSuccess": False, "ErrorCode": 200, "ArgumentErrors": [
        {"ArgumentName": "FromDateCreatedOffset", "ErrorMessage": "is required"}]}),
     "Booker refused the request: argument FromDateCreatedOffset: is required", False),
    (response(404, {"IsSuccess": False, "ErrorCode": 404, "ErrorMessage": "Order 5 was not "
                    "found."}), "HTTP 404: Order 5 was not found.; ErrorCode 404", True),
    (response(body={"IsSuccess": False, "ErrorCode": 2, "ErrorMessage": "Location not found"}),
     "Booker refused the request: Location not found", True),
    (response(400, text="<html>bad</html>"), "HTTP 400: non-JSON body", False),
], ids=["400-argument", "200-argument-errors", "404", "not-found-envelope", "400-html"])
def test_refused_requests_are_fatal_naming_the_argument(reply, text, not_found):
    got = data(reply)
    error = fatal(got)
    assert isinstance(error, BookerRequestError) and text in str(error)
    assert str(error).startswith("orders, page 1: ")
    assert got.not_found is not_found


def test_server_text_is_scrubbed_of_secrets_and_jwt_shapes():
    scrub = Scrubber({"sk-secret"})
    scrub.add("tok-Issued9")
    text = scrub.text({"ErrorMessage": "echo sk-secret tok-Issued9 eyJhbGciOi.eyJleHAiOjE.sig"})
    assert text == "echo *** *** ***"
