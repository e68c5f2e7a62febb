"""The shipped code location: what ``dagster dev`` loads from workspace.yaml."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from booker_assets.errors import BookerConfigError


def test_import_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken setting in the developer's shell must not break importing the module (the
    tests' conftest imports it); it fails when Dagster loads the definitions, naming the fix."""
    monkeypatch.setenv("BOOKER_PII", "hash")
    monkeypatch.delenv("BOOKER_PII_KEY", raising=False)
    module = importlib.reload(importlib.import_module("booker_assets.definitions"))
    with pytest.raises(BookerConfigError, match="BOOKER_PII_KEY"):
        module.defs()


def test_dagster_loads_the_workspace() -> None:
    """``dagster definitions validate -w workspace.yaml``, as the webserver loads it."""
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Validation successful" in done.stderr + done.stdout
