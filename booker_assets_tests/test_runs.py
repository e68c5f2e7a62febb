"""Dead runs: the shipped instance settings that mark them failed and free their slots."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from booker_assets_tests.e2e import REPO


def test_shipped_instance_frees_dead_runs_slots_and_retries_dead_workers(tmp_path: Path) -> None:
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        settings = instance.run_monitoring_settings
        # unset or 0: the slots of a dead run are never freed
        assert settings["free_slots_after_run_end_seconds"] > 0
        assert settings["poll_interval_seconds"] <= 10  # recovery within a minute
        assert instance.run_monitoring_max_resume_run_attempts == 0  # cannot resume
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert not instance.run_retries_retry_on_asset_or_op_failure
