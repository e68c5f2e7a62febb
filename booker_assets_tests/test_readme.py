"""The README is a test: every ```bash block runs, in order, as a user would type it.

One simulated terminal: the blocks run one after another in a scratch copy of the repository
that shares this ``.venv``, each block's exports carried to the next. What the README says about
it (its "Tests" section) is what this file does:

- ``make demo`` runs for real, with ``DAYS=2``; ``make test`` is not run from inside itself.
- ``<!-- docs-test: serves -->`` before a block: a server; it must print that it serves (and
  answer on the URL it prints), then gets Ctrl-C.
- ``<!-- docs-test: skip REASON -->`` before a block: not run; the reason is printed.
- A Booker account is played by a sandbox this test starts: ``export NAME=...`` takes its
  credentials, and its URL stands for the default base URL of the blocks that export them.

``make demo`` runs once in the suite, here: what its user sees of it (its terminal, log file,
the checks in the instance) is read right after its block. Before the first block, two demos
are SIGKILLed while loading in the clone's DAGSTER_HOME (after ``make install``): with no
daemon nothing fails their runs, and nothing needs to, since a run executed in its caller's
process waits for no pool slot; the README's ``make demo`` is the next one.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.assets import API_POOL
from booker_assets.defs.checks import check_evaluators
from booker_assets.defs.jobs import LOAD_JOB
from booker_assets.defs.locations import drift_check
from booker_assets.defs.partitions import RANGE_END, RANGE_START
from booker_assets.defs.storage import connect_locked
from booker_assets.settings import load_settings
from booker_assets_tests.e2e import (
    in_progress,
    instance_environment,
    start,
    step_started,
    wait_for,
)
from booker_sandbox import BookerSandbox, SandboxSettings

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = re.compile(r"^<!-- docs-test: (?P<mode>serves|skip)(?P<reason>[^>]*?) -->$", re.M)
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.M | re.S)
SHELL_LANGS = {"", "sh", "shell", "console", "zsh", "bash-session", "shell-session"}
NOT_RUN = {"make test": "the test suite itself (.ci/run runs it)"}
PLACEHOLDER = re.compile(r"^(?P<head>\s*export\s+(?P<name>\w+))=\.\.\.(?=\s|$)", re.M)
SERVING = re.compile(r"serving\b.*?(?P<url>http://127\.0\.0\.1:\d+)", re.I)
BLOCK_SECONDS = 900
SERVE_SECONDS = 300
DEMO = [sys.executable, "-m", "booker_assets.demo"]
# Not in a user's shell: a Booker account, a Dagster home, and make's own variables (under
# `make test`, a `make demo` would be a sub-make printing "make[1]: Entering directory" lines).
USERS_SHELL_LACKS = ("BOOKER_", "DAGSTER_", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")
STEP_S = 120  # until a killed demo's run has started its step, on a loaded host


@dataclass(frozen=True)
class Block:
    line: int  # of the fence in README.md
    code: str
    mode: str  # run, serves or skip
    reason: str = ""


def readme_blocks(text: str) -> list[Block]:
    """Every ```bash block, with the docs-test marker on the line right before its fence."""
    blocks = []
    for fence in FENCE.finditer(text):
        lang = fence["lang"]
        line = text.count("\n", 0, fence.start()) + 1
        if lang in SHELL_LANGS:
            pytest.fail(f"README.md:{line}: a ```{lang} block: write ```bash (it is run) or "
                        f"```text (it is not)")
        if lang != "bash":
            continue
        before = text[:fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.fullmatch(before)
        blocks.append(Block(line, fence["code"], marker["mode"] if marker else "run",
                            marker["reason"].strip() if marker else ""))
    return blocks


def test_the_readme_blocks_are_all_found() -> None:
    """A docs-test that finds nothing would pass: the parser must see what the README holds."""
    text = README.read_text()
    blocks = readme_blocks(text)
    assert text.count("```bash\n") == len(blocks)
    assert len(MARKER.findall(text)) == sum(b.mode != "run" for b in blocks)  # none misplaced
    assert blocks[0].code.startswith("make demo") and "make test" in blocks[0].code
    assert {"serves", "skip", "run"} <= {b.mode for b in blocks}
    assert all(b.reason for b in blocks if b.mode == "skip")


def _scratch_copy(destination: Path) -> Path:
    """The repository's files (tracked, and new ones not ignored) with this ``.venv`` linked:
    what a fresh clone after ``make install`` holds. Times are kept, so make installs nothing."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in listed.splitlines():
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    (destination / ".venv").symlink_to(REPO / ".venv")
    return destination


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _restore_signals() -> None:
    # Ctrl-C must reach the server even when pytest was started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _with_account(block: Block, account: dict[str, str], env: dict[str, str]) -> str:
    """``export NAME=...`` takes the account's value; the account's URL stands for the base URL
    default (the real one cannot be reached from here)."""
    def value(match: re.Match) -> str:
        name = match["name"]
        assert name in account, f"README.md:{block.line}: {name}=... but no account value"
        return f"{match['head']}={account[name]}"

    code, count = PLACEHOLDER.subn(value, block.code)
    if count:
        env.setdefault("BOOKER_BASE_URL", account["BOOKER_BASE_URL"])
    return code


def _runnable(code: str) -> str:
    lines = []
    for line in code.splitlines():
        reason = NOT_RUN.get(line.split("#", 1)[0].strip())
        lines.append(f": 'not run here: {reason}'" if reason else line)
    return "\n".join(lines)


def _run(block: Block, code: str, cwd: Path, env: dict[str, str]
         ) -> tuple[dict[str, str], subprocess.CompletedProcess]:
    """Run a block in bash: the environment it ends with (its exports) for the next, and what
    it printed."""
    saved = cwd.parent / "env.out"
    script = f"set -euo pipefail\n{code}\nenv -0 > '{saved}'\n"
    done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=BLOCK_SECONDS, stdin=subprocess.DEVNULL)
    if done.returncode:
        pytest.fail(f"README.md:{block.line} failed ({done.returncode}):\n{block.code}\n"
                    f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")
    carried = dict(item.split("=", 1) for item in saved.read_text().split("\0") if "=" in item)
    return {k: v for k, v in carried.items() if k not in ("SHLVL", "_", "PWD", "OLDPWD")}, done


def _answers(url: str, block: Block) -> None:
    """``url`` answers HTTP (any status) within a minute of the server saying it serves."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with contextlib.suppress(urllib.error.HTTPError):  # an answer all the same
                urllib.request.urlopen(url, timeout=10).close()
            return
        except (urllib.error.URLError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                pytest.fail(f"README.md:{block.line} said it serves at {url}: {exc}")
            time.sleep(1)


def _serve(block: Block, code: str, cwd: Path, env: dict[str, str]) -> str:
    """Start a server block, wait until it says it serves and answers there, then Ctrl-C."""
    process = subprocess.Popen(["bash", "-c", code], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                               start_new_session=True, preexec_fn=_restore_signals)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=lambda: [*map(lines.put, process.stdout), lines.put(None)],
                              daemon=True)
    reader.start()
    seen, serving, deadline = [], None, time.monotonic() + SERVE_SECONDS
    try:
        while serving is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            seen.append(line)
            serving = SERVING.search(line)
        if serving is None:
            pytest.fail(f"README.md:{block.line} never said it serves:\n{''.join(seen)[-3000:]}")
        _answers(serving["url"], block)
        return serving["url"]
    finally:
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as in the terminal
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # what outlives it (code servers)
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _killed_demos(home: str, root: Path) -> set[str]:
    """Two demos in DAGSTER_HOME ``home``, SIGKILLed once their runs load (from a slow sandbox,
    into a file of their own); their runs' ids."""
    root.mkdir()
    with BookerSandbox(SandboxSettings(latency_ms=500)) as slow, \
            dg.DagsterInstance.from_config(home) as instance:
        env = instance_environment(slow, root, ("1001", "1002")) | {"DAGSTER_HOME": home}
        logs = [root / f"killed-{n}.log" for n in range(2)]
        demos = [start([*DEMO, "--days", "7"], env, log) for log in logs]

        def both_loading() -> set[str] | None:
            loading = {run for run in in_progress(instance) if step_started(instance, run)}
            return loading if len(loading) == 2 else None

        try:
            return wait_for("both demo runs to start their step", both_loading,
                            time.monotonic() + STEP_S, logs, interval=0.25)
        finally:
            for process in demos:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class DemoSeen:
    """``make demo`` (the README's first block) as its user saw it, read right after its block:
    the blocks after it load more into the same file and instance."""

    lines: list[str]  # its terminal, from its "Loading …" line (make prints its recipe first)
    stderr: str
    data: Path  # the clone's data/: the database, its read copy, demo.log
    counts: dict[str, int]  # rows of each table in DuckDB
    killed: set[str]  # the runs of the two demos killed before it
    in_progress: set[str]  # the instance's runs still in progress
    claimed: list  # the API pool's claimed slots
    load_runs: list[dg.DagsterRun]  # of the load job, the killed ones aside
    checks: dict[dg.AssetCheckKey, bool | None]  # passed, None: not evaluated by its runs


def _seen_after_demo(done: subprocess.CompletedProcess, clone: Path, env: dict[str, str],
                     killed: set[str]) -> DemoSeen:
    lines = done.stdout.splitlines()
    first = next((n for n, line in enumerate(lines) if line.startswith("Loading ")), 0)
    data = clone / "data"
    with connect_locked(str(data / "booker_assets.duckdb"), read_only=True) as conn:
        counts = {t: conn.execute(f"select count(*) from booker.{t}").fetchone()[0]
                  for t in TABLES}
    settings = load_settings(env)
    keys = [*check_evaluators(settings), *drift_check(settings).check_keys]
    with dg.DagsterInstance.from_config(str(clone / ".dagster_home")) as instance:
        runs = instance.get_runs()
        ids = {run.run_id for run in runs}
        latest = {key: instance.get_latest_asset_check_evaluation_record(key) for key in keys}
        return DemoSeen(
            lines[first:], done.stderr, data, counts, killed, in_progress(instance),
            instance.event_log_storage.get_concurrency_info(API_POOL).claimed_slots,
            [run for run in runs if run.job_name == LOAD_JOB and run.run_id not in killed],
            {key: record.event.dagster_event.event_specific_data.passed
             if record and record.run_id in ids else None for key, record in latest.items()})


@dataclass(frozen=True)
class Terminal:
    """The README's blocks, run once for every test of this file."""

    clone: Path
    report: list[str]  # a line per block: ran, served, skipped, and its seconds
    account_requests: int  # what the sandbox playing the Booker account was asked
    demo: DemoSeen


@pytest.fixture(scope="module")
def terminal(tmp_path_factory: pytest.TempPathFactory) -> Terminal:
    root = tmp_path_factory.mktemp("readme")
    clone = _scratch_copy(root / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(USERS_SHELL_LACKS)}
    env |= {"DAYS": "2", "PORT": str(_free_port()), "SANDBOX_PORT": str(_free_port())}
    subprocess.run(["make", "-s", "install"], cwd=clone, env=env, check=True,
                   capture_output=True, timeout=BLOCK_SECONDS)  # installs nothing: the .venv
    killed = _killed_demos(str(clone / ".dagster_home"), root / "killed")
    report, demo = [], None
    with BookerSandbox(SandboxSettings()) as account_sandbox:
        account = {f"BOOKER_{field.upper()}": value
                   for field, value in account_sandbox.credentials.items()}
        account["BOOKER_BASE_URL"] = account_sandbox.url
        for block in readme_blocks(README.read_text()):
            started = time.monotonic()
            if block.mode == "skip":
                report.append(f"README.md:{block.line} skipped: {block.reason}")
                continue
            code = _runnable(_with_account(block, account, env))
            if block.mode == "serves":
                url = _serve(block, code, clone, env)
                report.append(f"README.md:{block.line} served at {url}")
            else:
                env, done = _run(block, code, clone, env)
                if block.code.startswith("make demo"):
                    demo = _seen_after_demo(done, clone, env, killed)
                report.append(f"README.md:{block.line} ran")
            report[-1] += f" ({time.monotonic() - started:.1f} s)"
        requests = account_sandbox.stats.requests
    print("\n" + "\n".join(report))
    assert demo is not None, "no README block runs make demo"
    return Terminal(clone, report, requests, demo)


def test_every_readme_command_works(terminal: Terminal) -> None:
    assert terminal.account_requests > 0  # the account's block reached the account
    # the backfill block loaded its range (June 2025 of 1001 and 1002) into the clone's file
    database = terminal.clone / "data" / "booker_assets.duckdb"
    with connect_locked(str(database), read_only=True) as conn:
        loaded = conn.execute("SELECT DISTINCT location_id FROM booker.orders WHERE report_date"
                              " BETWEEN '2025-06-01' AND '2025-06-30' ORDER BY 1").fetchall()
    assert loaded == [(1001,), (1002,)]


# ---------------------------------------------------------------- make demo, as its user saw it
def test_killed_demos_do_not_block_the_next(terminal: Terminal) -> None:
    demo = terminal.demo
    assert len(demo.killed) == 2 and demo.in_progress == demo.killed  # no daemon fails them
    # granularity run: in-process runs never claim a slot, so none is left behind
    assert demo.claimed == []


def test_the_demo_loads_every_location_in_one_run(terminal: Terminal) -> None:
    """Each run repeats Dagster's fixed work (a planned event per asset and partition, the
    checks over every table): the demo's 2 days × 4 locations are one run (issue 24)."""
    runs = terminal.demo.load_runs
    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS]
    assert runs[0].tags[RANGE_START].endswith("|1001")
    assert runs[0].tags[RANGE_END].endswith("|1004")


def test_the_terminal_shows_a_line_per_table_then_the_summary(terminal: Terminal) -> None:
    demo = terminal.demo
    lines = demo.lines
    assert lines[0].startswith("Loading 2 days") and "embedded Booker sandbox" in lines[0]
    stored = {m["table"]: int(m["rows"].replace(",", "")) for m in (
        re.match(r"\s+stored booker\.(?P<table>\w+)\s+(?P<rows>[\d,]+) rows\s+report \w+: "
                 r"[\d,]+ requests$", line) for line in lines) if m}
    assert stored == demo.counts  # one line per table, its rows as DuckDB holds them
    assert sum(demo.counts.values()) > 0
    (summary,) = [n for n, line in enumerate(lines) if line.startswith("Read from DuckDB ")]
    reads = terminal.clone / lines[summary].removeprefix("Read from DuckDB ")  # the read copy
    assert reads.resolve() == (demo.data / "booker_assets.read.duckdb").resolve()
    assert lines[summary + 1] == "What DuckDB holds"
    assert all(any(f"booker.{t} " in line for line in lines[summary + 1:]) for t in TABLES)
    # the marts' summary: a row per location for its sales, then for its appointments and
    # utilization, whole at 80 columns (no cell cut short with "…")
    headers = [line for line in lines if "avg ticket" in line or "no-shows" in line]
    assert all(any(name in line for line in headers) for name in (
        "net sales", "refunds", "no-shows", "rebooked", "staff util", "room util")), headers
    rows = [line for line in lines if re.match(r"│ 100\d ", line)]
    assert len(rows) == 8 and all(re.search(r"\d+%", row) for row in rows[4:]), rows
    assert not any("…" in line for line in headers + rows)
    assert re.fullmatch(r"Checks: \d+ passed, 0 failed", lines[-2]), "\n".join(lines[-12:])
    assert lines[-1].startswith("Done in ") and "Dagster's event log: data/demo.log." in lines[-1]


def test_dagster_debug_stream_goes_to_the_log_file_not_the_terminal(terminal: Terminal) -> None:
    demo = terminal.demo
    assert not any("DEBUG" in line for line in demo.lines) and "DEBUG" not in demo.stderr
    # a line per table, the summaries (about 70 lines): not the DEBUG stream (thousands)
    assert len(demo.lines) < 80
    log = (demo.data / "demo.log").read_text()
    assert " - DEBUG - " in log and "ASSET_MATERIALIZATION" in log
    assert "RUN_SUCCESS" in log and "ASSET_CHECK_EVALUATION" in log


def test_after_the_demo_every_check_is_evaluated(terminal: Terminal) -> None:
    """Issue 11, finding 5: booker/locations showed "Not evaluated" after ``make demo``. The
    UI reads the latest evaluation of each check from the instance; so does this test."""
    checks = terminal.demo.checks
    locations = [key for key in checks if key.asset_key.path == ["booker", "locations"]]
    assert len(locations) >= 4  # keys, rejects, and the drift check
    assert [str(key) for key, passed in checks.items() if passed is None] == []
    assert all(checks.values())
