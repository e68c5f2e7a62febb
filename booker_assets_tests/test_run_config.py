"""What the launchpad offers holds variable names, never an account's values, so a server
restarted with a real account's environment runs with that account (issue 11, finding 10).

The code location is the shipped ``workspace.yaml`` in a code server of its own, started with
the environment under test, and the launchpad's config is read and launched through the same
GraphQL fields the UI uses (``rootDefaultYaml``, ``launchPipelineExecution``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from booker_assets_tests.conftest import SANDBOX_SETTINGS
from booker_sandbox import DEMO_CREDENTIALS, BookerSandbox

REPO = Path(__file__).resolve().parents[1]
REAL = {  # a "real account": a second sandbox that accepts only these
    "client_id": "real-cid-Ab12",
    "client_secret": "real-cs-Cd34Ef",
    "subscription_key": "real-sk-Gh56Ij",
    "personal_access_token": "real-pat-Kl78Mn",
}
SCHEMA = """query($selector: PipelineSelector!) { runConfigSchemaOrError(selector: $selector) {
  __typename ... on RunConfigSchema { rootDefaultYaml } ... on PythonError { message } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params)
  { __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""


def _selector(job: str) -> dict:
    return {"repositoryLocationName": "booker_assets", "repositoryName": "__repository__",
            "pipelineName": job}


@contextmanager
def _server(monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance,
            env: dict[str, str]) -> Iterator:
    """A code server of the shipped workspace started with exactly ``env`` as BOOKER_*."""
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("BOOKER_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        patch.chdir(REPO)
        with define_out_of_process_context(str(REPO / "workspace.yaml"), None,
                                           instance) as context:
            yield context


def _launchpad_yaml(context, job: str) -> str:
    """What the launchpad fills in: every default of the job's config expanded."""
    data = execute_dagster_graphql(context, SCHEMA, {"selector": _selector(job)}).data
    schema = data["runConfigSchemaOrError"]
    assert schema["__typename"] == "RunConfigSchema", schema
    return schema["rootDefaultYaml"]


def _launch(context, instance: dg.DagsterInstance, job: str, run_config: str) -> dg.DagsterRun:
    params = {"selector": _selector(job), "runConfigData": run_config, "mode": "default"}
    launched = execute_dagster_graphql(context, LAUNCH, {"params": params}).data
    launched = launched["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 120
    while not (run := instance.get_run_by_id(run_id)).is_finished:
        assert time.monotonic() < deadline, f"run {run_id} still {run.status}"
        time.sleep(0.5)
    return run


def test_launchpad_config_holds_no_account_values_and_follows_a_restart(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    base = {"BOOKER_DUCKDB_PATH": str(tmp_path / "booker.duckdb")}
    real_settings = replace(SANDBOX_SETTINGS, credentials=REAL)
    # runs start at once (no daemon here to dequeue them), in the code server as in dagster dev
    launch_now = {"run_coordinator": {"module": "dagster.core.run_coordinator",
                                      "class": "DefaultRunCoordinator"}}
    with dg.instance_for_test(overrides=launch_now, temp_dir=str(tmp_path)) as instance, \
            BookerSandbox(real_settings) as real:
        # 1. No BOOKER_* at all: the sandbox. The launchpad shows variable names only.
        with _server(monkeypatch, instance, base) as context:
            yaml = _launchpad_yaml(context, "booker_check_connection")
            asset_yaml = _launchpad_yaml(context, "__ASSET_JOB")
            sandbox_run = _launch(context, instance, "booker_check_connection", yaml)
        for text in (yaml, asset_yaml):
            assert "env: BOOKER_CLIENT_SECRET" in text and "env: BOOKER_BASE_URL" in text
            assert not [v for v in [*DEMO_CREDENTIALS.values(), "sandbox"] if v in text]
        assert sandbox_run.status == dg.DagsterRunStatus.SUCCESS  # the defaults resolved

        # 2. The server restarted with a real account's environment; the user launches the
        #    config the launchpad kept from step 1.
        account = {f"BOOKER_{field.upper()}": value for field, value in REAL.items()}
        with _server(monkeypatch, instance, base | account | {
                "BOOKER_BASE_URL": real.url, "BOOKER_LOCATION_IDS": "1001"}) as context:
            real_run = _launch(context, instance, "booker_check_connection", yaml)
        real_url = real.url

    assert real_run.status == dg.DagsterRunStatus.SUCCESS
    assert real.stats.by_route  # it went to the real account's server, not the sandbox
    stored = str(instance.get_run_by_id(real_run.run_id).run_config)
    assert not [v for v in [*REAL.values(), real_url] if v in stored]
