"""The connection-check job names the wrong credential, against the sandbox over HTTP."""

from __future__ import annotations

import pytest

from booker_assets.client import BookerResource
from booker_assets.connection import booker_check_connection
from booker_assets.sandbox import BookerSandbox


def _run(sandbox: BookerSandbox, **wrong: str):
    booker = BookerResource(base_url=sandbox.url, **(sandbox.credentials | wrong))
    return booker_check_connection.execute_in_process(resources={"booker": booker},
                                                      raise_on_error=False)


def test_connection_check_passes_with_the_right_credentials(sandbox):
    assert _run(sandbox).success


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("client_secret", "BOOKER_CLIENT_SECRET"),
        ("subscription_key", "BOOKER_SUBSCRIPTION_KEY"),
        ("personal_access_token", "BOOKER_PERSONAL_ACCESS_TOKEN"),
    ],
)
def test_connection_check_names_the_wrong_credential(sandbox, field, named):
    result = _run(sandbox, **{field: "wrong-value-123"})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert named in message
    assert "wrong-value-123" not in message


def test_connection_check_names_an_unreachable_base_url():
    booker = BookerResource(base_url="http://127.0.0.1:9", client_id="a", client_secret="b",
                            subscription_key="c", personal_access_token="d", max_retries=0,
                            timeout_seconds=1)
    result = booker_check_connection.execute_in_process(resources={"booker": booker},
                                                        raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "BOOKER_BASE_URL" in failure.step_failure_data.error.message
