"""The demo's terminal without a run: what the watcher shows of a run's warnings and failures.

``make demo`` itself runs once in the suite, as the README's first command: its terminal, log
file, checks and the two killed demos before it are tested in ``test_readme.py``.
"""

from __future__ import annotations

import io

import dagster as dg
from rich.console import Console
from rich.progress import Progress

from booker_assets.demo import DEMO_TAG, Watcher


def test_the_terminal_shows_each_warning_and_failure_first_line_once(tmp_path):
    """A load waiting for a held file says so on the terminal (issue 21: only in the log
    file, for 30 s of silence); a failure shows its cause's first line once, its details and
    the DEBUG stream stay in the log file."""
    held = "DuckDB /x/booker_assets.duckdb is held by PID 4242 (dbeaver): waited 0 s"
    cause = "orders, location 1001, 2025-03-05: the disk of /x is full"

    @dg.op
    def load(context) -> None:  # unannotated: Dagster refuses a string annotation
        context.log.info("a detail for the log file")
        context.log.warning(f"{held}\nwaiting up to 600 s more")
        context.log.error(f"report failed: {cause}")
        raise dg.Failure(description=f"{cause}\nThe step's other reports were stored.")

    with dg.DagsterInstance.ephemeral() as instance:
        dg.GraphDefinition("demo_like", node_defs=[load]).to_job().execute_in_process(
            instance=instance, tags={DEMO_TAG: "t"}, raise_on_error=False)
        out = io.StringIO()
        console = Console(file=out, soft_wrap=True)
        with (tmp_path / "demo.log").open("w") as log, \
                Watcher(instance, "t", 1, log, Progress(console=console)):
            pass
    shown = [line for line in out.getvalue().splitlines() if line.startswith("  ")]
    assert shown == [f"  warning: {held}", f"  error: report failed: {cause}"]
    assert "a detail for the log file" in (tmp_path / "demo.log").read_text()
