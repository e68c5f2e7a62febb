"""A report's tables change together: a run SIGKILLed at any point of its write phase leaves
each report (orders, items, refunds; customers, memberships, notes; employees, schedules)
wholly as before or wholly new, never torn between its tables.

The kill points are chosen deterministically: the child (``loads.py``'s ``kill_at``) kills
itself at the k-th point its writes reach, after writing which point it is to a trace file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from booker_assets.catalogue.reports import GROUPS
from booker_assets.defs.storage import connect_locked
from booker_assets_tests.conftest import SANDBOX_SETTINGS, load_range, make_defs, make_settings

ROOT = Path(__file__).resolve().parents[1]
LOCATION = "1001"
DAYS = (date(2025, 6, 29), date(2025, 6, 30))  # the last day observes the snapshot reports
REPORTS = {g.name: [t.name for t in g.tables] for g in GROUPS if len(g.tables) > 1}
GROUP_OF_FIRST = {tables[0]: report for report, tables in REPORTS.items()}  # it writes them
SELECTION = [f"booker/{table}" for tables in REPORTS.values() for table in tables]
# Points of the write phase (see loads.KILL_POINTS; 1, 4, 7 stage a table, 2, 5, 8 replace its
# rows): 3 the first table's loads written, its siblings not (where issue 21's kill tore
# orders from items); 6 and 9 the second and third written, before the commit; 10 the first
# report committed; 13 the second report's first table written.
POINTS = (3, 6, 9, 10, 13)


@pytest.fixture(scope="module")
def stored(sandbox, tmp_path_factory) -> Path:
    """The run's partitions, already loaded once: the 'old' state a killed run must keep."""
    settings = make_settings(tmp_path_factory.mktemp("stored"), (LOCATION,))
    result = load_range(make_defs(sandbox, settings), [LOCATION], *DAYS, selection=SELECTION)
    assert result.success
    return Path(settings.duckdb_path)


def _kill_at(sandbox, database: Path, point: int, trace: Path) -> None:
    args = {"url": sandbox.url, "credentials": sandbox.credentials,
            "now": SANDBOX_SETTINGS.now.isoformat(), "locations": [LOCATION],
            "days": [str(d) for d in DAYS], "settings": {"duckdb_path": str(database)},
            "selection": SELECTION, "kill_at": point, "trace": str(trace)}
    child = subprocess.run([sys.executable, "-m", "booker_assets_tests.loads", json.dumps(args)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr[-3000:]  # it reached the point and died there


def _loaded_at(database: Path) -> dict[str, set]:
    """Per report, the distinct _loads times of its tables' partitions (one per transaction)."""
    with connect_locked(str(database), read_only=True) as conn:
        return {report: {t for (t,) in conn.execute(
            "SELECT DISTINCT loaded_at FROM booker._loads WHERE table_name IN"
            " (SELECT unnest(?::VARCHAR[]))", [tables]).fetchall()}
            for report, tables in REPORTS.items()}


def _disagreements(database: Path) -> list[tuple]:
    """Partitions whose rows differ from what _loads says was written, and orders without
    their items: a torn report shows as either."""
    with connect_locked(str(database), read_only=True) as conn:
        rows = [(table, *r) for tables in REPORTS.values() for table in tables
                for r in conn.execute(
                    f"SELECT l.report_date, l.row_count, count(t.report_date) FROM booker._loads"
                    f" l LEFT JOIN booker.{table} t USING (report_date, location_id)"
                    f" WHERE l.table_name = ? GROUP BY ALL"
                    f" HAVING l.row_count <> count(t.report_date)", [table]).fetchall()]
        return rows + conn.execute(
            "SELECT 'order without items', o.report_date, o.id FROM booker.orders o ANTI JOIN"
            " booker.orders_items i ON i.report_date = o.report_date AND i.order_id = o.id"
        ).fetchall()


def test_a_kill_at_any_point_of_the_write_leaves_each_report_old_or_new(sandbox, stored,
                                                                      tmp_path):
    database = tmp_path / stored.name
    outcomes = []
    for point in POINTS:
        database.write_bytes(stored.read_bytes())  # each kill starts from the old state
        old = _loaded_at(database)
        trace = tmp_path / f"trace-{point}"
        _kill_at(sandbox, database, point, trace)
        reached = trace.read_text().split("\n")[:-1]
        assert reached[-1].startswith(f"{point} ")
        committed = {GROUP_OF_FIRST[line.split()[2]] for line in reached
                     if line.split()[1] == "write_report"}

        now = _loaded_at(database)
        assert all(len(times) == 1 for times in now.values()), now  # none torn
        new = {report for report in REPORTS if now[report] != old[report]}
        assert new == committed, (point, reached)
        assert _disagreements(database) == []
        outcomes.append(f"{point} ({reached[-1].split(maxsplit=1)[1].strip()}): "
                        f"new {sorted(new) or 'none'}")
    print("\n[measured] kill points: " + "; ".join(outcomes))
