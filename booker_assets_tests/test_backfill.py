"""How backfills are cut, at chain scale (30 days × 50 locations): the command line
(``booker-assets backfill``, run as the README writes it) runs a location and up to a month of
its days per run; the days-back job files one Dagster backfill, which Dagster's own planner
cuts, each partition in exactly one run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from booker_assets import cli
from booker_assets.api.client import BookerResource
from booker_assets.catalogue.reports import TABLES
from booker_assets.definitions import build_definitions
from booker_assets.defs.backfill import location_slices, range_slices
from booker_assets.defs.partitions import (
    LOCATIONS_PARTITIONS,
    RANGE_END,
    RANGE_START,
    add_locations,
)
from booker_assets.defs.storage import connect_locked
from booker_assets_tests.conftest import SANDBOX_SETTINGS, make_settings, planned_runs
from booker_sandbox import BookerSandbox, SandboxSettings

REPO = Path(__file__).resolve().parents[1]
CHAIN = tuple(str(1001 + n) for n in range(50))
NOON = datetime(2025, 3, 5, 12, tzinfo=timezone.utc)  # every sandbox zone is on 03-05


def days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]


def shape(runs: list[tuple[set[str], list[str]]]) -> set[tuple[int, int]]:
    """(locations, days) of each run."""
    return {(len({k.split("|")[1] for k in keys}), len({k.split("|")[0] for k in keys}))
            for _, keys in runs}


# ---------------------------------------------------------------- the command line's cut


def test_cli_slices_are_location_major_at_chain_scale():
    slices = location_slices(CHAIN, date(2025, 1, 1), date(2025, 1, 30))
    assert len(slices) == 50 and {(s.days, s.first, s.last) for s in slices} == {
        (30, date(2025, 1, 1), date(2025, 1, 30))}
    assert [s.locations for s in slices] == [(loc,) for loc in CHAIN]


def test_cli_slices_cut_a_year_into_months_of_one_location():
    slices = location_slices(["1001", "1002"], date(2025, 1, 1), date(2025, 12, 31))
    assert len(slices) == 2 * 12 and max(s.days for s in slices) == 31
    covered = [(loc, s.first + timedelta(days=n)) for s in slices for loc in s.locations
               for n in range(s.days)]
    assert sorted(covered) == [(loc, d) for loc in ("1001", "1002")
                               for d in days(date(2025, 1, 1), 365)]


def test_demo_slices_span_neighbour_locations_a_month_at_a_time():
    """The demo's cut: every location in one run per month; a location left out (not in the
    allow-list) splits the range, since a run's range spans every location between its ends."""
    order = ["1001", "1002", "1003", "1004", "1005"]
    whole = range_slices(order, order, date(2025, 1, 1), date(2025, 1, 10))
    assert [(s.locations, s.first, s.last) for s in whole] == [
        (tuple(order), date(2025, 1, 1), date(2025, 1, 10))]
    assert whole[0].tags == {RANGE_START: "2025-01-01|1001", RANGE_END: "2025-01-10|1005"}
    gapped = range_slices(order, ["1005", "1001", "1002", "1004"], date(2025, 1, 1),
                          date(2025, 2, 15))
    assert [(s.locations, s.days) for s in gapped] == [
        (("1001", "1002"), 31), (("1004", "1005"), 31), (("1001", "1002"), 15),
        (("1004", "1005"), 15)]


# ---------------------------------------------------------------- days back's backfills


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory):
    """A 50-location brand, its locations already discovered, and the shipped definitions."""
    tmp = tmp_path_factory.mktemp("chain")
    with BookerSandbox(replace(SANDBOX_SETTINGS, location_count=50)) as sandbox, \
            dg.instance_for_test() as instance:
        add_locations(instance, CHAIN)
        booker = BookerResource(base_url=sandbox.url, **sandbox.credentials)
        settings = make_settings(tmp, (), start_date=date(2025, 1, 1))
        yield build_definitions(settings, booker, clock=lambda: NOON), instance


def launch_days_back(defs: dg.Definitions, instance: dg.DagsterInstance, start: int, end: int):
    result = defs.get_job_def("booker_days_back").execute_in_process(
        run_config={"ops": {"file_days_back_backfill": {"config": {
            "days_back_start": start, "days_back_end": end}}}}, instance=instance)
    assert result.success
    return [b for b in instance.get_backfills() if b.tags["booker/days_back_run"] == result.run_id]


def test_days_back_over_a_month_of_50_locations_is_one_backfill_the_planner_cuts(chain):
    defs, instance = chain
    (backfill,) = launch_days_back(defs, instance, 30, 1)
    runs = planned_runs(defs, backfill.asset_backfill_data.target_subset
                        .iterate_asset_partitions(), instance)
    # fewer days than locations: the planner cuts by day (its runs share the rest, README)
    assert len(runs) == 60 and shape(runs) == {(31, 1), (19, 1)}
    covered = [(asset, key) for assets, keys in runs for asset in assets for key in keys]
    wanted = {f"{d}|{loc}" for d in days(date(2025, 2, 3), 30) for loc in CHAIN}
    assert {key for _, key in covered} == wanted
    assert len(covered) == len(set(covered)) == len(TABLES) * len(wanted)  # each once


def test_days_back_of_one_day_is_one_backfill_each_location_in_one_run(chain):
    defs, instance = chain
    (backfill,) = launch_days_back(defs, instance, 1, 1)
    runs = planned_runs(defs, backfill.asset_backfill_data.target_subset
                        .iterate_asset_partitions(), instance)
    assert shape(runs) == {(31, 1), (19, 1)}
    locations = [key.split("|")[1] for _, keys in runs for key in keys]
    assert sorted(locations) == sorted(CHAIN)  # each location asked in exactly one run


# ---------------------------------------------------------------- `booker-assets backfill`


def readme_command(name: str) -> str:
    """The README's shell command that starts with ``name`` (continuation lines joined)."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"^[ \t]*({re.escape(name)}(?:.*\\\n)*.*)$", text, flags=re.MULTILINE)
    assert match, f"the README has no command starting with {name!r}"
    return match.group(1)


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A shell with no Booker credentials (so: the embedded sandbox), its own DuckDB file and
    Dagster instance (``make`` copies dagster.yaml into DAGSTER_HOME the same way)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKER_", "DAGSTER_"))}
    return env | {"DAGSTER_HOME": str(home),
                  "BOOKER_DUCKDB_PATH": str(tmp_path / "booker_assets.duckdb")}


def test_the_readme_backfill_command_loads_the_range(user_env, monkeypatch):
    """The README's command, its range cut to its first 3 days: test_readme.py runs it whole
    (and checks that its month landed); here every run, tag and row count is checked."""
    command = re.sub(r"--to \S+", "--to 2025-06-03",
                     readme_command(".venv/bin/booker-assets backfill"))
    assert "--from 2025-06-01 " in command, "the README's range moved: update this test"
    done = subprocess.run(["bash", "-c", command], cwd=REPO, env=user_env, capture_output=True,
                          text=True, timeout=600)
    print(f"\n$ {command}\n{done.stdout}{done.stderr[-3000:]}")
    assert done.returncode == 0, done.stderr[-3000:]

    first, last = (date.fromisoformat(re.search(rf"--{flag} (\S+)", command).group(1))
                   for flag in ("from", "to"))
    locations = re.search(r"--locations (\S+)", command).group(1).split(",")
    the_days = days(first, (last - first).days + 1)
    embedded = BookerSandbox(SandboxSettings()).dataset  # what the embedded sandbox serves
    expected = {(d, int(loc)): len(embedded.orders(int(loc), d))
                for d in the_days for loc in locations}
    with connect_locked(user_env["BOOKER_DUCKDB_PATH"], read_only=True) as conn:
        loads = conn.execute("SELECT report_date, location_id, row_count FROM booker._loads"
                             " WHERE table_name = 'orders'").fetchall()
        tables = {t for (t,) in conn.execute("SELECT DISTINCT table_name FROM booker._loads"
                                             ).fetchall()}
    assert {(d, loc): n for d, loc, n in loads} == expected and sum(expected.values()) > 0
    assert tables == set(re.search(r"--assets (\S+)", command).group(1).split(","))

    monkeypatch.setenv("DAGSTER_HOME", user_env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:  # what `make dev` then shows
        assert instance.get_dynamic_partitions(LOCATIONS_PARTITIONS) == [
            "1001", "1002", "1003", "1004"]
        runs = instance.get_runs()
    assert len(runs) == len(locations) and {r.status for r in runs} == {
        dg.DagsterRunStatus.SUCCESS}
    assert sorted((r.tags[RANGE_START], r.tags[RANGE_END]) for r in runs) == [
        (f"{first}|{loc}", f"{last}|{loc}") for loc in sorted(locations)]
    assert len({r.tags["booker/backfill"] for r in runs}) == 1


@pytest.mark.parametrize(("args", "expected"), [
    (["--from", "2025-06-02", "--to", "2025-06-01"], "--to 2025-06-01 is before --from"),
    (["--from", "2024-12-31", "--to", "2025-01-01"], "before BOOKER_START_DATE 2025-01-01"),
    (["--from", "2025-06-01", "--to", "2999-01-01"], "--to 2999-01-01 is a day not over yet"),
    (["--from", "2025-06-01", "--to", "2025-06-01", "--assets", "order"],
     "--assets order: not tables Fix: choose from locations,customers,"),
    (["--from", "2025-06-01", "--to", "2025-06-01", "--locations", "1001,1099"],
     "--locations 1099: not locations Booker returns (within BOOKER_LOCATION_IDS, if set) "
     "Fix: choose from 1001,1002,1003,1004"),
])
def test_a_bad_backfill_command_names_the_cause_and_the_fix(user_env, monkeypatch, capsys,
                                                            args, expected):
    for name in [n for n in os.environ if n.startswith("BOOKER_")]:
        monkeypatch.delenv(name)
    for name in ("DAGSTER_HOME", "BOOKER_DUCKDB_PATH"):
        monkeypatch.setenv(name, user_env[name])
    assert cli.main(["backfill", *args]) == 2
    err = capsys.readouterr().err
    print(f"\n{args}: {err}")
    assert expected in err
    assert not Path(user_env["BOOKER_DUCKDB_PATH"]).exists()  # nothing loaded, nothing written


def test_backfill_flags_override_the_deployments_options(user_env, monkeypatch, capsys):
    """BOOKER_INCLUDE_EXPIRED=true is the deployment's; --no-include-expired holds for the
    command's runs only, and each load records what it used."""
    for name in [n for n in os.environ if n.startswith("BOOKER_")]:
        monkeypatch.delenv(name)
    for name in ("DAGSTER_HOME", "BOOKER_DUCKDB_PATH"):
        monkeypatch.setenv(name, user_env[name])
    monkeypatch.setenv("BOOKER_INCLUDE_EXPIRED", "true")
    day = ["--from", "2025-06-02", "--to", "2025-06-02", "--locations", "1001",
           "--assets", "customer_memberships"]

    def stored() -> tuple[int, str]:
        with connect_locked(user_env["BOOKER_DUCKDB_PATH"], read_only=True) as conn:
            return conn.execute(
                "SELECT (SELECT count(*) FILTER (is_expired) FROM booker.customer_memberships),"
                " options::VARCHAR FROM booker._loads").fetchone()

    assert cli.main(["backfill", *day, "--no-include-expired"]) == 0
    assert "options include_expired=false," in capsys.readouterr().out
    assert stored() == (0, '{"include_expired": false}')
    assert cli.main(["backfill", *day]) == 0
    assert "options include_expired=true," in capsys.readouterr().out
    expired, options = stored()
    assert expired > 0 and options == '{"include_expired": true}'

    monkeypatch.setenv("BOOKER_INCLUDE_EXPIRED", "yes")
    assert cli.main(["backfill", *day]) == 2
    assert "BOOKER_INCLUDE_EXPIRED='yes' is not true or false" in capsys.readouterr().err
