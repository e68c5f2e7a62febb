"""End to end: no credential, issued token or ``BOOKER_PII_KEY`` in Dagster's storage, logs,
errors or DuckDB, and customers' personal data kept, keyed-hashed or dropped by ``BOOKER_PII``."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import sqlite3
import zlib
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from booker_assets.catalogue.reports import TABLES
from booker_assets.definitions import build_definitions
from booker_assets.defs.storage import connect_locked
from booker_assets.settings import PiiKey
from booker_assets_tests.conftest import SANDBOX_SETTINGS, load_range, make_defs, make_settings
from booker_sandbox import BookerSandbox, FaultProfile

LOCS = ("1001", "1002")
DAY = date(2025, 3, 6)
CREDENTIALS = {
    "client_id": "cid-Qv7",  # not a secret, but the others must not be found next to it
    "client_secret": "cs-Wk93TzLp0q",
    "subscription_key": "sk-Jd48RnXc2m",
    "personal_access_token": "pat-Hb61YsVe7u",
}
WRONG_PAT = "pat-Wrong-Lf25GoPa8k"
PII_KEY = "pk-Ng38VxQe5s" * 3  # BOOKER_PII_KEY
OTHER_PII_KEY = "pk-Other-Cu07HzYb" * 2
# Faults that make the client log retries and renew tokens, without slow read timeouts.
NOISY = FaultProfile(rate=0.1, kinds=("http_503", "empty_body", "expired_token",
                                      "connection_reset"))


def _sqlite_texts(path: Path) -> list[str]:
    """Every value of every table, zlib-compressed blobs (Dagster's snapshots) unpacked."""
    texts = []
    with sqlite3.connect(path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master "
                                                 "WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        texts.append(value.decode("latin-1"))
                        try:
                            value = zlib.decompress(value).decode("utf-8", "replace")
                        except zlib.error:
                            continue
                    texts.append(str(value))
    return texts


def _duckdb_texts(database: str) -> list[str]:
    with connect_locked(database, read_only=True) as conn:
        columns = conn.execute("SELECT table_schema, table_name, column_name FROM "
                               "information_schema.columns WHERE data_type = 'VARCHAR'"
                               ).fetchall()
        return [str(value) for schema, table, column in columns
                for (value,) in conn.execute(f'SELECT DISTINCT "{column}" FROM '
                                             f'"{schema}"."{table}"').fetchall()]


def _leaks(texts: dict[str, str], secrets: list[str]) -> list[tuple[str, str]]:
    return [(where, secret[:12]) for where, text in texts.items() for secret in secrets
            if secret in text]


def _error_chain(result: dg.ExecuteInProcessResult) -> str:
    texts = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            texts.append(error.to_string())
            error = error.cause
    return "\n".join(texts)


def test_full_load_leaves_no_secret_anywhere(tmp_path, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("BOOKER_PII", "hash")
    monkeypatch.setenv("BOOKER_PII_KEY", PII_KEY)
    settings = make_settings(tmp_path, LOCS, pii="hash", pii_key=PiiKey(PII_KEY))
    issued: list[str] = []
    sandbox_settings = replace(SANDBOX_SETTINGS, credentials=CREDENTIALS, faults=NOISY)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with BookerSandbox(sandbox_settings) as sb, dg.instance_for_test(
            temp_dir=str(home)) as instance:
        issue = sb.api.signer.issue
        monkeypatch.setattr(sb.api.signer, "issue", lambda *a: issued.append(issue(*a))
                            or issued[-1])
        # As deployed: credentials are EnvVars on the resource (defs/connection.py).
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(f"BOOKER_{name.upper()}", value)
        monkeypatch.setenv("BOOKER_BASE_URL", sb.url)
        defs = build_definitions(settings)
        loaded = load_range(defs, LOCS, DAY, DAY, instance=instance)
        monkeypatch.setenv("BOOKER_PERSONAL_ACCESS_TOKEN", WRONG_PAT)
        failed = load_range(defs, LOCS, DAY, DAY, instance=instance,
                            selection=["booker/orders"], raise_on_error=False)
        retries = sb.stats.faults

    assert loaded.success and not failed.success
    assert retries["http_503"] and issued  # the logs had errors and renewals to tell about
    secrets = [v for k, v in CREDENTIALS.items() if k != "client_id"] + [WRONG_PAT, PII_KEY]
    secrets += issued
    out, err = capfd.readouterr()
    texts = {"captured log": caplog.text, "stdout": out, "stderr": err,
             "errors": _error_chain(failed)}
    texts |= {f"log record {i}": r.getMessage() for i, r in enumerate(caplog.records)}
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)
    for path in files:
        texts[str(path)] = path.read_bytes().decode("latin-1")
        if path.suffix == ".db":
            texts[f"{path} (rows)"] = "\n".join(_sqlite_texts(path))
    texts[settings.duckdb_path] = Path(settings.duckdb_path).read_bytes().decode("latin-1")
    texts["duckdb values"] = "\n".join(_duckdb_texts(settings.duckdb_path))
    assert "rejected the personal access token" in texts["errors"]
    assert CREDENTIALS["client_id"] not in texts["duckdb values"]
    print(f"\nsearched {len(texts)} texts ({sum(map(len, texts.values()))} chars) for "
          f"{len(secrets)} secrets ({len(issued)} issued tokens)")
    assert _leaks(texts, secrets) == []


# ----- personal data ---------------------------------------------------------------------------

PII = TABLES["customers"].pii


def _customers(sandbox: BookerSandbox, tmp_path: Path, name: str,
               pii: dict[str, Any]) -> list[dict]:
    settings = make_settings(tmp_path / name, ("1001",), **pii)
    load_range(make_defs(sandbox, settings), ["1001"], DAY, DAY,
               selection=["booker/customers", "booker/notes"])
    with connect_locked(settings.duckdb_path, read_only=True) as conn:
        cursor = conn.execute("SELECT * EXCLUDE (_loaded_at) FROM booker.customers ORDER BY id")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


POLICIES = {  # the settings BOOKER_PII and BOOKER_PII_KEY
    "keep": {"pii": "keep"},
    "hash": {"pii": "hash", "pii_key": PiiKey(PII_KEY)},
    "hash again": {"pii": "hash", "pii_key": PiiKey(PII_KEY)},  # a later load, same key
    "hash other key": {"pii": "hash", "pii_key": PiiKey(OTHER_PII_KEY)},
    "drop": {"pii": "drop"},
}


@pytest.fixture(scope="module")
def pii_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pii")


@pytest.fixture(scope="module")
def by_mode(sandbox, pii_dir) -> dict[str, list[dict]]:
    return {name: _customers(sandbox, pii_dir, name, pii) for name, pii in POLICIES.items()}


def _digest(value: object, key: str = PII_KEY) -> str:
    text = str(value).strip().lower().encode()
    return hmac.new(key.encode(), text, hashlib.sha256).hexdigest()


def test_keep_stores_personal_data_as_booker_sends_it(by_mode):
    kept = by_mode["keep"]
    columns = set(kept[0])
    assert {"email", "home_phone", "cell_phone", "date_of_birth"} <= columns
    assert any(c.startswith("address_") for c in columns)
    assert all("@" in row["email"] for row in kept if row["email"])


def test_hash_replaces_personal_columns_with_stable_digests(by_mode):
    kept, hashed = by_mode["keep"], by_mode["hash"]
    assert len(hashed) == len(kept) > 0
    personal = [c for c in kept[0] if c.startswith(PII)]
    for keep_row, hash_row in zip(kept, hashed, strict=True):
        assert set(hash_row) == set(keep_row)
        for column, value in keep_row.items():
            if column not in personal:
                assert hash_row[column] == value, column
            elif value is None:
                assert hash_row[column] is None
            else:
                assert re.fullmatch("[0-9a-f]{64}", hash_row[column])
                assert hash_row[column] == _digest(value), column


def test_drop_removes_personal_columns_only(by_mode):
    kept, dropped = by_mode["keep"], by_mode["drop"]
    assert not [c for c in dropped[0] if c.startswith(PII)]
    for keep_row, drop_row in zip(kept, dropped, strict=True):
        assert drop_row == {c: v for c, v in keep_row.items() if not c.startswith(PII)}


def test_hash_is_stable_for_one_key_and_differs_with_another(by_mode):
    hashed, again, other = by_mode["hash"], by_mode["hash again"], by_mode["hash other key"]
    assert hashed == again  # joins across loads hold
    emails = [(a["email"], b["email"]) for a, b in zip(hashed, other, strict=True) if a["email"]]
    assert emails and all(a != b for a, b in emails)
    assert other[0]["email"] == _digest(by_mode["keep"][0]["email"], OTHER_PII_KEY)


def test_pii_key_is_nowhere_in_the_duckdb_file(by_mode, pii_dir):
    assert by_mode["hash"]
    files = [p for p in pii_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in files)
    for path in files:
        data = path.read_bytes()
        for key in (PII_KEY, OTHER_PII_KEY):
            assert key.encode() not in data, path
            assert key.encode("utf-16-le") not in data, path
    for name in POLICIES:
        values = "\n".join(_duckdb_texts(str(pii_dir / name / "booker_assets.duckdb")))
        assert PII_KEY not in values and OTHER_PII_KEY not in values
