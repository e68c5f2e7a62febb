"""The Dagster UI in a real browser, as a user takes it (issue 11, item 7).

``dagster dev`` on loopback with the shipped workspace and ``dagster.yaml``, no BOOKER_* in its
environment (the embedded sandbox, as ``make dev`` on a fresh clone), a temporary DAGSTER_HOME
and database; Debian's chromium driven by pytest-playwright (``make test`` installs it). The
tests: (a) backfill the whole group over 2 days × 1 location from the asset graph, (b) launch
``booker_days_back`` from its launchpad, (c) read one partition's own row count, which must
equal what DuckDB holds for it. The location keys may be static or added by a sensor
(``DynamicPartitionsDefinition``): the fixture waits for them in the instance when dynamic.

Wall time is dominated by the backfill daemon's fixed 30 s loop (a backfill needs two ticks);
each test prints its figures, and the fixture the server's start and stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from booker_assets.api.client import BookerResource
from booker_assets.catalogue.reports import TABLES
from booker_assets.definitions import build_definitions
from booker_assets.defs.storage import connect_locked
from booker_assets.settings import SANDBOX_BASE_URL, load_settings
from booker_assets_tests.conftest import load_range
from booker_assets_tests.e2e import demo_environment
from booker_sandbox import DEMO_CREDENTIALS

sync_api = pytest.importorskip("playwright.sync_api")  # a dev dependency: make install has it
Page, expect = sync_api.Page, sync_api.expect

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).with_name("dagster")
LOCATION_NAME = "booker_assets"  # workspace.yaml
GROUP_URL = f"/locations/{LOCATION_NAME}/asset-groups/booker"
DATES = (date(2025, 1, 1), date(2025, 1, 2))
LOCATION = "1001"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
# Playwright adds --headless, --no-sandbox (needed as root) and the no-network flags itself;
# these are the rest a GPU-less, offline machine wants.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic"]
# Test-only instance setting on top of the shipped dagster.yaml: queued runs start within 1 s
# (default 5 s). Nothing else differs from what `make dev` runs.
FAST_DEQUEUE = "\nrun_queue:\n  dequeue_interval_seconds: 1\n"
DAYS_BACK_YAML = """\
ops:
  file_days_back_backfill:
    config:
      days_back_start: 2
      days_back_end: 1
      locations: ["1001"]
"""

# A page's first GraphQL load on a 2-core machine busy with other work can take a minute:
# generous bounds, never sleeps (every wait ends as soon as the page shows what it waits for).
expect.set_options(timeout=60_000)


# ---------------------------------------------------------------- pytest-playwright, chromium
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    # --browser-channel cannot name a path, and Playwright's own browser download is not
    # reachable here: Debian's chromium by its path.
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: `make test` installs Debian's chromium "
                    f"(or: apt-get install chromium; or set CHROMIUM_PATH)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


# pytest-playwright's playwright and browser live for the session, and while Playwright runs
# its event loop stays the thread's running loop (it runs in a greenlet): every later test
# file on the same xdist worker then fails at asyncio.run() (Dagster's automation-condition
# evaluation calls it). Here they live for this file and stop with it; the plugin's page,
# context and artifacts fixtures use them.
@pytest.fixture(scope="module")
def playwright() -> Iterator[sync_api.Playwright]:
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: sync_api.Playwright,
            browser_type_launch_args: dict) -> Iterator[sync_api.Browser]:
    browser = playwright.chromium.launch(**browser_type_launch_args)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def browser_context_args(dagster_dev: str) -> dict:
    return {"base_url": dagster_dev, "viewport": {"width": 1600, "height": 1000},
            "timezone_id": "UTC"}


@pytest.fixture
def page(page: Page) -> Page:
    page.set_default_timeout(90_000)
    return page


# ---------------------------------------------------------------- dagster dev
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(base_url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base_url}/graphql", data=json.dumps({"query": query, "variables": variables or {}})
        .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert not body.get("errors"), body["errors"]
    return body["data"]


def _wait(ready: Callable[[], bool], seconds: float, what: str, process: subprocess.Popen,
          log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster dev exited ({process.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if ready():
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{what} not ready after {seconds:.0f} s:\n{log.read_text()[-4000:]}")


def _restore_signals() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and dagster dev
    # maps SIGTERM onto SIGINT's handler: an inherited SIG_IGN makes it deaf to both.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # stops the webserver and daemon via their pipes
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # what is left of its process group
        os.killpg(process.pid, signal.SIGKILL)  # (code servers, run workers)
    process.wait()


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> dict[str, str]:
    env = demo_environment(tmp_path_factory.mktemp("ui"))
    with open(Path(env["DAGSTER_HOME"]) / "dagster.yaml", "a") as instance_yaml:
        instance_yaml.write(FAST_DEQUEUE)
    return env | {"PYTHONUNBUFFERED": "1"}


def _location_partitions(env: dict[str, str]) -> dg.PartitionsDefinition:
    defs = build_definitions(load_settings(env))
    orders = defs.resolve_assets_def(dg.AssetKey(["booker", "orders"]))
    return orders.partitions_def.get_partitions_def_for_dimension("location")


@pytest.fixture(scope="module")
def dagster_dev(environment: dict[str, str]) -> Iterator[str]:
    home = Path(environment["DAGSTER_HOME"])
    log = home / "dagster_dev.log"
    workspace = ["-w", str(REPO / "workspace.yaml")]
    started = time.monotonic()
    # The daily loads would start loading recent days at once: stopped, as a user would.
    subprocess.run([str(DAGSTER), "sensor", "stop", *workspace, "booker_daily_loads"],
                   env=environment, cwd=REPO, check=True, capture_output=True, timeout=300)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(DAGSTER), "dev", *workspace, "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=environment, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_restore_signals)
    try:
        _wait(lambda: urllib.request.urlopen(f"{base_url}/server_info", timeout=2).status
              == 200, 180, "the webserver", process, log)
        entries = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
          locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

        def loaded() -> bool:
            (entry,) = graphql(base_url, entries)["workspaceOrError"]["locationEntries"]
            error = entry["locationOrLoadError"] or {}
            if error.get("__typename") == "PythonError":
                pytest.fail(f"the code location failed to load: {error['message']}")
            return entry["loadStatus"] == "LOADED"

        _wait(loaded, 180, "the code location", process, log)
        locations = _location_partitions(environment)
        if isinstance(locations, dg.DynamicPartitionsDefinition):  # keys come from a sensor
            with dg.DagsterInstance.from_config(str(home)) as instance:
                _wait(lambda: LOCATION in instance.get_dynamic_partitions(locations.name),
                      180, "the location partitions", process, log)
        # "Join the Dagster community" pops up 1 s after the first page on 127.0.0.1 and takes
        # every click: marked seen for this instance.
        graphql(base_url, "mutation { setNuxSeen }")
        print(f"\ndagster dev ready in {time.monotonic() - started:.1f} s ({log})")
        yield base_url
    finally:
        stopping = time.monotonic()
        _stop(process)
        print(f"\ndagster dev stopped in {time.monotonic() - stopping:.1f} s")


@pytest.fixture(scope="module")
def instance(environment: dict[str, str], dagster_dev: str) -> Iterator[dg.DagsterInstance]:
    """The server's own instance (SQLite under DAGSTER_HOME), read from the test."""
    with dg.DagsterInstance.from_config(environment["DAGSTER_HOME"]) as shared:
        yield shared


def _rx(text: str) -> str:
    """Literal text in a regex locator: Playwright sends /source/ and does not escape "/"."""
    return re.escape(text).replace("/", r"\/")


def _partition(day: date) -> str:
    return f"{day}|{LOCATION}"


# ---------------------------------------------------------------- (a) backfill from the graph
def test_backfill_of_the_group_from_the_asset_graph(page: Page, instance, environment):
    started = time.monotonic()
    page.goto(GROUP_URL)
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    # every table of the catalogue is an asset of the group, and nothing else is
    expect(dialog.get_by_text(f"Launch runs to materialize {len(TABLES)} assets")).to_be_visible()

    dates = dialog.get_by_placeholder(re.compile(r"^ex: \d{4}-\d\d-\d\d"))
    dates.fill(f"[{DATES[0]}...{DATES[1]}]")
    dates.press("Enter")
    # the location picker is a tag selector (placeholder "Select a partition", with "or
    # create one" when dynamic); its menu items are named "1001 1001" (text drawn twice)
    dialog.get_by_text(re.compile(r"^Select a partition")).click()
    page.get_by_role("menuitem", name=re.compile(rf"^{LOCATION}\b")).click()
    dialog.get_by_text("Launch runs to materialize").first.click()  # closes the menu
    expect(page.get_by_role("menu")).to_have_count(0)
    expect(dialog.get_by_text("2 partitions", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch backfill").click()

    toast = page.get_by_role("region", name=re.compile("^Notifications")).get_by_role("listitem")
    expect(toast.filter(has_text="Created backfill")).to_be_visible()
    href = toast.get_by_role("link", name="View").get_attribute("href")  # toasts go away
    backfill_id = href.rstrip("/").rsplit("/", 1)[-1]
    launched = time.monotonic()
    page.goto(href)
    status = page.get_by_text("Status", exact=True).locator("..")
    expect(status.get_by_text("Succeeded", exact=True)).to_be_visible(timeout=240_000)
    succeeded = time.monotonic()

    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert runs and {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
    with connect_locked(environment["BOOKER_DUCKDB_PATH"], read_only=True) as conn:
        loaded = conn.execute("SELECT DISTINCT report_date, location_id FROM booker._loads"
                              " WHERE table_name = 'orders'").fetchall()
    assert sorted(loaded) == [(day, int(LOCATION)) for day in DATES]
    print(f"\n(a) launched in {launched - started:.1f} s, succeeded {succeeded - launched:.1f} s "
          f"later ({len(runs)} run(s))")


# ---------------------------------------------------------------- (c) a partition's row count
@pytest.fixture
def loaded_partition(instance, environment) -> str:
    """DATES × LOCATION of the orders, in one run: loaded by test (a), or here when alone."""
    key = dg.AssetKey(["booker", "orders"])
    if not {_partition(day) for day in DATES} <= instance.get_materialized_partitions(key):
        # in this process, whose environment is not the server's: the sandbox named directly
        sandbox = BookerResource(base_url=SANDBOX_BASE_URL, **DEMO_CREDENTIALS)
        defs = build_definitions(load_settings(environment), sandbox)
        load_range(defs, [LOCATION], *DATES, instance=instance)
    return _partition(DATES[0])


def test_a_partition_shows_its_own_row_count(page: Page, environment, loaded_partition):
    started = time.monotonic()
    page.goto("/assets/booker/orders?view=partitions")
    page.get_by_placeholder("Filter by date…").fill(str(DATES[0]))  # a virtualized list
    page.get_by_title(str(DATES[0]), exact=True).click()
    page.get_by_title(LOCATION, exact=True).click()
    expect(page).to_have_url(re.compile(re.escape(f"partition={DATES[0]}%7C{LOCATION}")))
    def value(key: str) -> str:  # metadata rows: key, value, (empty)
        row = page.get_by_role("row", name=re.compile("^" + _rx(key) + " "))
        return row.get_by_role("cell").nth(1).inner_text()

    shown = int(value("dagster/row_count").replace(",", ""))
    location = value("booker/location")  # the key stays the id; the name is beside it

    with connect_locked(environment["BOOKER_DUCKDB_PATH"], read_only=True) as conn:
        (stored,) = conn.execute("SELECT count(*) FROM booker.orders WHERE report_date = ? AND"
                                 " location_id = ?", [DATES[0], int(LOCATION)]).fetchone()
        (run_total,) = conn.execute("SELECT count(*) FROM booker.orders WHERE location_id = ?"
                                    " AND report_date BETWEEN ? AND ?",
                                    [int(LOCATION), *DATES]).fetchone()
    assert shown == stored > 0
    assert location.startswith(f"{LOCATION} ") and len(location) > len(LOCATION) + 1
    assert run_total > stored  # the run's total would be a different number
    print(f"\n(c) partition {loaded_partition}: {shown} rows, read in "
          f"{time.monotonic() - started:.1f} s")


# ---------------------------------------------------------------- (b) days back, launchpad
def test_days_back_from_its_launchpad(page: Page, instance):
    started = time.monotonic()
    page.goto("/jobs")
    page.get_by_role("link", name=re.compile(r"(^|\s)booker_days_back(\s|$)")).click()
    page.get_by_role("tab", name="Launchpad").click()
    editor = page.locator(".CodeMirror").first
    expect(editor).to_be_visible()
    # keyboard.type() would go through CodeMirror's auto-indent: one paste-like insert instead
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(DAYS_BACK_YAML)
    assert page.evaluate("() => document.querySelector('.CodeMirror').CodeMirror.getValue()"
                         ) == DAYS_BACK_YAML
    expect(page.get_by_text("No errors", exact=True)).to_be_visible()
    launch = page.get_by_role("button", name="Launch Run")
    expect(launch).to_be_enabled()
    launch.click()

    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = page.url.rsplit("/", 1)[-1].split("?")[0]
    expect(page.get_by_role("img", name=re.compile("^run_(success|failed|canceled)$"))
           ).to_be_visible(timeout=120_000)
    expect(page.get_by_role("img", name="run_success")).to_be_visible()

    run = instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    filed = [b for b in instance.get_backfills() if b.tags.get("booker/days_back_run") == run_id]
    assert len(filed) == 1  # the run's one job: filing the backfill
    print(f"\n(b) launchpad to run success in {time.monotonic() - started:.1f} s")


# ---------------------------------------------------------------- (d) a typo, a failed load
TYPO = "9999"


def test_a_typo_location_fails_its_load_without_a_red_check_and_is_removed(
        page: Page, instance, environment, dagster_dev):
    """The Materialize dialog's "Add a partition" (its GraphQL mutation) makes 9999 a location
    partition; its load fails naming Booker's ids, the checks of booker/orders are evaluated on
    the data (none reads "Execution failed"), and the command removes the partition."""
    from booker_assets.defs.backfill import materialize_range

    added = graphql(dagster_dev, """mutation($key: String!) { addDynamicPartition(
        repositorySelector: {repositoryLocationName: "booker_assets",
                             repositoryName: "__repository__"},
        partitionsDefName: "booker_locations", partitionKey: $key) { __typename } }""",
                    {"key": TYPO})
    assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"
    sandbox = BookerResource(base_url=SANDBOX_BASE_URL, **DEMO_CREDENTIALS)
    failed = materialize_range(build_definitions(load_settings(environment), sandbox), instance,
                               [TYPO], DATES[0], DATES[0], selection=["booker/orders"],
                               raise_on_error=False)
    failure = next(e for e in failed.all_events if e.is_step_failure)
    assert "(it returns 1001" in failure.step_failure_data.error.message

    page.goto("/assets/booker/orders?view=checks")
    expect(page.get_by_text("key_unique").first).to_be_visible()
    expect(page.get_by_text("Execution failed")).to_have_count(0)

    removed = subprocess.run([sys.executable, "-m", "booker_assets.cli", "remove-location",
                              TYPO, "--keep-rows"], env=environment, cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert removed.returncode == 0, removed.stderr
    assert TYPO not in instance.get_dynamic_partitions("booker_locations")
