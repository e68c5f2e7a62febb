"""The salon metrics: the dbt project ``dbt/booker_metrics`` as Dagster assets (dagster-dbt).

Each dbt model is an asset of group ``metrics`` (key ``metrics/<model>``), drawn downstream of
the ``booker/*`` assets whose tables it reads (the dbt sources name them in their meta), and
each dbt test is an asset check of the model it tests. The models refresh by themselves after
the loads (``REFRESH``, evaluated by the ``booker_metrics_refresh`` sensor): the marts that grow
with history are incremental, so a refresh costs what the load changed.

dbt runs in its own process against the warehouse the loads write: on a DuckDB file it holds
the writers' turn meanwhile (storage.Warehouse.exclusive) and publishes the read copy after;
on a DuckLake it writes beside the loads. The manifest is parsed once and kept (``dbt parse``
again only when a file of the project is newer); nothing is fetched (the project has no
packages).

No ``from __future__ import annotations`` here: Dagster reads the ``context`` parameter's
type, which must be the class itself, not a string.
"""

import fcntl
import hashlib
import json
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from booker_assets.defs.storage import extension_directory, warehouse_of
from booker_assets.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt" / "booker_metrics"
GROUP_NAME = "metrics"
SENSOR_NAME = "booker_metrics_refresh"
# On a DuckLake, loads commit beside a refresh: one that started before the newest load the
# last refresh saw may have committed after it. Its slices are read again by the next refresh
# if it started at most this long before (a slice's transaction lasts seconds).
LAKE_OVERLAP_MINUTES = 60
PARTIAL_PARSE = "partial_parse.msgpack"  # dbt's parse state

# After a load (or a backfill) of any table a model reads, once no load of it is running: a
# backfill of two years refreshes the marts once at its end, not after each of its runs. Not
# eager(): that also waits while any partition of an upstream is missing, and the daily
# partitions of days never loaded (before a location opened) always are.
REFRESH = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after the loads it reads")


class MetricsTranslator(DagsterDbtTranslator):
    """Models are ``metrics/<model>`` (dagster-dbt's key: schema, name) in group ``metrics``,
    refreshed after the loads, owned like the raw tables; sources keep the ``booker/*`` keys
    their meta names."""

    def __init__(self, owners: tuple[str, ...]) -> None:
        super().__init__()
        self.owners = owners

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str,
                       project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if not unique_id.startswith("model."):
            return spec
        return spec.replace_attributes(group_name=GROUP_NAME, automation_condition=REFRESH,
                                       owners=list(self.owners))


@cache
def prepared_project(wanted: str) -> tuple[DbtProject, dict[str, Any]]:
    """The dbt project and its manifest for the vars ``wanted`` (JSON), parsed again if missing
    or older than a file of the project; by one process at a time, read under the same lock,
    and looked at once per process. Parsed with the vars the runs pass, into a target folder of
    their own: dbt parses everything again when the vars or the profile differ, so runs for one
    warehouse then parse only what changed, and processes for another (a test, a benchmark) do
    not undo that."""
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:12]
    project = DbtProject(PROJECT_DIR, target_path=Path("target") / digest)
    target = PROJECT_DIR / project.target_path
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".parse.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stale(project.manifest_path):
            dbt_cli(project).cli(["parse", "--quiet", "--vars", wanted],
                                 target_path=target).wait()
        return project, json.loads(project.manifest_path.read_text())


def dbt_cli(project: DbtProject) -> DbtCliResource:
    # the venv's dbt, whatever PATH the process was started with
    return DbtCliResource(project_dir=project,
                          dbt_executable=str(Path(sys.executable).with_name("dbt")))


def _stale(manifest: Path) -> bool:
    if not manifest.exists():
        return True
    files = [PROJECT_DIR / "dbt_project.yml", PROJECT_DIR / "profiles.yml",
             *(f for folder in ("models", "macros", "tests")
               for f in (PROJECT_DIR / folder).rglob("*") if f.is_file())]
    built = manifest.stat().st_mtime
    return any(f.stat().st_mtime > built for f in files)


@contextmanager
def _run_target(project: DbtProject) -> Iterator[Path]:
    """A target folder for one dbt build, removed after it: seeded with the parse's state, so
    dbt parses only what changed (dagster-dbt would seed it from ``target/`` alone), and not
    left behind run after run."""
    parsed = PROJECT_DIR / project.target_path
    run = parsed / "runs" / uuid.uuid4().hex[:12]
    run.mkdir(parents=True)
    try:
        shutil.copy(parsed / PARTIAL_PARSE, run / PARTIAL_PARSE)
        yield run
    finally:
        shutil.rmtree(run, ignore_errors=True)


def dbt_vars(settings: Settings) -> dict[str, str | int]:
    """The warehouse of ``settings`` for profiles.yml (the code location's, not the shell's)."""
    if settings.warehouse == "ducklake":
        return {"booker_warehouse": "ducklake",
                "booker_ducklake_catalog": settings.ducklake_catalog,
                "booker_ducklake_data_path": settings.ducklake_data_path,
                "booker_extension_directory": extension_directory(),
                "incremental_overlap_minutes": LAKE_OVERLAP_MINUTES}
    return {"booker_warehouse": "duckdb",
            "booker_duckdb_path": str(Path(settings.duckdb_path).expanduser().resolve())}


def vars_json(settings: Settings) -> str:
    return json.dumps(dbt_vars(settings), sort_keys=True)


def build_metrics_assets(settings: Settings) -> dg.AssetsDefinition:
    project, manifest = prepared_project(vars_json(settings))
    warehouse = warehouse_of(settings)

    @dbt_assets(manifest=manifest, project=project, name="booker_metrics",
                dagster_dbt_translator=MetricsTranslator(settings.owners))
    def booker_metrics(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator:
        args = ["build", "--vars", vars_json(settings)]  # as parsed
        with warehouse.exclusive(log=context.log), _run_target(project) as target:
            build = dbt.cli(args, context=context, target_path=target, raise_on_error=False)
            yield from build.stream()
            if not build.is_successful():
                raise dg.Failure(description=failure_causes(
                    build.get_artifact("run_results.json")))
        warehouse.publish(context.log)

    return booker_metrics


def failure_causes(run_results: Mapping[str, Any]) -> str:
    """What failed, each cause once, first: the last line of each failing node's message (a
    model's "location 1001 has no time zone: … Fix: …" fails every node that reads it), and
    which nodes. dagster-dbt's own error starts with the command line and leaves them below."""
    failed = [r for r in run_results["results"] if r["status"] in ("error", "fail")]
    causes = dict.fromkeys((r.get("message") or r["status"]).strip().splitlines()[-1].strip()
                           for r in failed)
    nodes = ", ".join(r["unique_id"].split(".")[2] for r in failed)  # kind.project.name[.hash]
    return f"{' | '.join(causes)} (dbt build failed in: {nodes})"


def metrics_definitions(settings: Settings) -> dg.Definitions:
    """The metrics' assets, their refresh sensor and the dbt resource."""
    assets = build_metrics_assets(settings)
    return dg.Definitions(
        assets=[assets],
        sensors=[dg.AutomationConditionSensorDefinition(
            SENSOR_NAME, target=dg.AssetSelection.groups(GROUP_NAME),
            # on from the start, like the loads' sensors: the marts follow every load with no
            # manual step (a warehouse with no location snapshot fails the refresh once, naming
            # the fix: macros/local_day.sql)
            default_status=dg.DefaultSensorStatus.RUNNING,
            description="Refreshes the metrics after the loads they read (REFRESH)")],
        resources={"dbt": dbt_cli(prepared_project(vars_json(settings))[0])},
    )
