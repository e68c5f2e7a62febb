"""What a Dagster user expects on every asset of the shipped code location: column descriptions,
owners, code versions, the table's name, the options it reads, the location-local day."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from booker_assets.catalogue.options import OPTIONS
from booker_assets.catalogue.reports import GROUPS, TABLES
from booker_assets.definitions import build_definitions
from booker_assets.defs.assets import STEP_NAME
from booker_assets.errors import BookerConfigError
from booker_assets.load.columns import code_version, declared_columns
from booker_assets.settings import DEFAULT_OWNERS, load_settings
from booker_assets_tests.conftest import table_rows


def _defs(tmp_path: Path, **env: str) -> dg.Definitions:
    return build_definitions(load_settings({"BOOKER_DUCKDB_PATH": str(tmp_path / "b.duckdb"),
                                            **env}))


def _specs(tmp_path: Path, **env: str) -> dict[str, dg.AssetSpec]:
    return {spec.key.path[-1]: spec for a in _defs(tmp_path, **env).assets for spec in a.specs}


def _options_field(defs: dg.Definitions) -> dg.Field:
    """The step's config as the launchpad reads it: its fields and their defaults."""
    step = next(a for a in defs.assets if a.op.name == STEP_NAME)
    return step.op.config_schema.as_field()


def test_every_asset_has_owners_code_version_table_name_and_column_docs(tmp_path):
    specs = _specs(tmp_path)
    assert set(specs) == set(TABLES)
    for name, spec in specs.items():
        group = next(g for g in GROUPS if TABLES[name] in g.tables)
        assert spec.owners == list(DEFAULT_OWNERS)
        assert spec.code_version == code_version(group, TABLES[name])
        assert spec.metadata["dagster/table_name"] == f"booker.{name}"
        columns = spec.metadata["dagster/column_schema"].columns
        assert [c.name for c in columns] == [c.name for c in declared_columns(group, TABLES[name])]
        assert all(c.description for c in columns), name
        assert "location-local days" in spec.description
        assert "location-local days" in spec.metadata["booker/day"]


def test_each_asset_names_the_options_it_reads_and_only_those(tmp_path):
    specs = _specs(tmp_path)
    for name, spec in specs.items():
        reads = [o for o in OPTIONS.values() if name in o.tables]
        shown = table_rows(spec.metadata["booker/options"])
        assert [(r["option"], r["setting"]) for r in shown] == [
            (o.name, o.setting) for o in reads], name
        for option in OPTIONS.values():
            assert (option.name in spec.description) == (option in reads), (name, option.name)
        override = spec.metadata["booker/options_override"].value
        assert ("ops:\n  booker_reports:\n    config:" in override) == bool(reads), name
    # the launchpad's own help: every option's description names the tables it changes
    fields = _options_field(_defs(tmp_path)).config_type.fields
    for name, option in OPTIONS.items():
        assert all(table in fields[name].description for table in option.tables)
        assert option.setting in fields[name].description


def test_the_launchpad_defaults_are_the_deployments_settings(tmp_path):
    assert _options_field(_defs(tmp_path)).default_value == dict.fromkeys(OPTIONS, False)
    field = _options_field(_defs(tmp_path, BOOKER_INCLUDE_EXPIRED="true",
                                 BOOKER_SCHEDULE_DEFAULTS="False"))
    assert field.default_value == dict.fromkeys(OPTIONS, False) | {"include_expired": True}
    specs = _specs(tmp_path, BOOKER_INCLUDE_EXPIRED="true")
    assert {r["setting"]: r["this_deployment"] for r in table_rows(
        specs["memberships"].metadata["booker/options"])} == {"BOOKER_INCLUDE_EXPIRED": True}


@pytest.mark.parametrize("value", ["yes", "1", "on", "tru"])
def test_an_option_setting_other_than_true_or_false_is_refused(value):
    with pytest.raises(BookerConfigError) as error:
        load_settings({"BOOKER_ONLY_ACTIVE_EMPLOYEES": value})
    first_line = str(error.value).splitlines()[0]
    assert f"BOOKER_ONLY_ACTIVE_EMPLOYEES={value!r} is not true or false" in first_line
    assert "BOOKER_ONLY_ACTIVE_EMPLOYEES=true or BOOKER_ONLY_ACTIVE_EMPLOYEES=false" in first_line


def test_owners_come_from_booker_owners(tmp_path):
    specs = _specs(tmp_path, BOOKER_OWNERS="ana@example.com, team:salon-ops")
    assert {tuple(s.owners) for s in specs.values()} == {("ana@example.com", "team:salon-ops")}


@pytest.mark.parametrize("owners", ["ana", "team:", "ana@example.com,data team"])
def test_a_bad_owner_is_refused_naming_the_form(owners):
    with pytest.raises(BookerConfigError, match="email address or team:<name>") as error:
        load_settings({"BOOKER_OWNERS": owners})
    assert "BOOKER_OWNERS=" in str(error.value)


def test_code_version_follows_the_schema_not_the_wording():
    group = next(g for g in GROUPS if g.name == "customers")
    customers = next(t for t in group.tables if t.name == "customers")
    version = code_version(group, customers)
    reworded = replace(customers, description="Other words.")
    assert code_version(group, reworded) == version
    assert code_version(group, customers, "drop") != version  # personal columns gone
    rekeyed = replace(customers, key=(*customers.key, "location_id"))
    assert code_version(group, rekeyed) != version
