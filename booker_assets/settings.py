"""Deployment settings read from the environment once, at code-location load.

Everything that shapes the asset graph (the first partition, the optional location allow-list,
the owners) must be known when Dagster loads the code, so it lives here rather than in run
config; the locations themselves are discovered from Booker (defs/locations.py), not
configured. Credentials and the base URL are not settings: they are `EnvVar`s on the resource,
resolved only when a run starts, for a real account and the sandbox alike (see
defs/connection.py). The one secret
here, ``BOOKER_PII_KEY``, is held by a ``PiiKey`` whose repr hides it, so printing or logging a
``Settings`` shows no key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from booker_assets.errors import BookerConfigError

CREDENTIAL_VARS = (
    "BOOKER_CLIENT_ID",
    "BOOKER_CLIENT_SECRET",
    "BOOKER_SUBSCRIPTION_KEY",
    "BOOKER_PERSONAL_ACCESS_TOKEN",
)
BASE_URL_VAR = "BOOKER_BASE_URL"
# BOOKER_BASE_URL's value for the embedded sandbox (started in-process on first use).
SANDBOX_BASE_URL = "sandbox"
DEFAULT_DUCKDB_PATH = "data/booker_assets.duckdb"
# Who answers for the assets (Dagster owners: an email or "team:<name>").
DEFAULT_OWNERS = ("team:data-engineering",)


BUCKETS = ("host", "postgres")  # where a key's rate bucket lives (api/ratelimit.py)
MODES = ("fixed", "adaptive")  # how its rate is set: as configured, or learned from 429s
DEFAULT_REQUESTS_PER_SECOND = 10.0  # the contract's sandbox default (Booker publishes none)
# Domo's options, a yes/no setting each (BOOKER_<NAME>); what each one changes is catalogue
# data (catalogue/options.py, keyed by these names).
OPTION_NAMES = ("include_expired", "ignore_freelancers", "only_active_employees",
                "schedule_defaults")


def option_setting(name: str) -> str:
    """The environment variable holding an option's deployment value."""
    return f"BOOKER_{name.upper()}"


PII_MODES = ("keep", "hash", "drop")
MIN_PII_KEY_CHARS = 32
NEW_PII_KEY = 'python -c "import secrets; print(secrets.token_hex(32))"'


class PiiKey:
    """The secret key of ``BOOKER_PII=hash``. Its repr and str never show it."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        secret = secret.strip()
        if len(secret) < MIN_PII_KEY_CHARS:  # never echo the value, not even in part
            raise BookerConfigError(
                f"BOOKER_PII_KEY is shorter than {MIN_PII_KEY_CHARS} characters: a short key "
                "can be guessed, and then every hashed email or phone recovered by trying "
                "candidates",
                fix=f"set BOOKER_PII_KEY to the output of `{NEW_PII_KEY}`",
            )
        self._secret = secret.encode()

    def digest(self, value: Any) -> str:
        """HMAC-SHA256 of the normalised value: the same for the same key, load after load."""
        text = str(value).strip().lower()
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "PiiKey(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PiiKey) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash((PiiKey, self._secret))


def missing_pii_key() -> BookerConfigError:
    """The load-time error for ``BOOKER_PII=hash`` without ``BOOKER_PII_KEY``."""
    return BookerConfigError(
        "BOOKER_PII=hash needs BOOKER_PII_KEY, the secret key of the keyed hash (HMAC-SHA256): "
        "an unkeyed hash of an email or phone is reversed by hashing candidates",
        fix=f"set BOOKER_PII_KEY to the output of `{NEW_PII_KEY}`, keep it secret and keep it "
        "the same (a new key changes every hashed value, so joins across loads break), or set "
        "BOOKER_PII=drop",
    )


def check_pii(mode: str, key: PiiKey | None) -> None:
    """Refuse an unknown BOOKER_PII, and ``hash`` without a key."""
    if mode not in PII_MODES:
        raise BookerConfigError(f"BOOKER_PII={mode!r} is not one of {', '.join(PII_MODES)}",
                                fix="set BOOKER_PII to keep (default), hash or drop")
    if mode == "hash" and key is None:
        raise missing_pii_key()


@dataclass(frozen=True)
class RateSettings:
    """The Booker client's pace and where its budget is kept (the DSN, a secret, is not here:
    the resource reads BOOKER_RATE_POSTGRES_DSN when a run starts)."""

    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND
    bucket: str = "host"  # "host": a file per host; "postgres": one row for every host
    mode: str = "fixed"  # "adaptive": learn the rate from 429s, up to ceiling
    ceiling: float = 0.0  # 0: CEILING_FACTOR × requests_per_second


WAREHOUSES = ("duckdb", "ducklake")
DEFAULT_LOCK_WAIT_SECONDS = 600.0
DEFAULT_LOOKAHEAD_DAYS = 30  # the days of the appointment book each daily load observes


@dataclass(frozen=True)
class Settings:
    use_sandbox: bool  # no credentials in the environment: run against the embedded sandbox
    allowed_locations: tuple[str, ...]  # BOOKER_LOCATION_IDS; empty: every location Booker returns
    start_date: date
    duckdb_path: str
    lookback_days: int
    grace_hours: float
    catch_up_days: int
    pii: str  # BOOKER_PII: keep, hash (with pii_key) or drop (load/pii.py applies it)
    rate: RateSettings = RateSettings()
    owners: tuple[str, ...] = DEFAULT_OWNERS
    warehouse: str = "duckdb"  # or "ducklake": ducklake_catalog and ducklake_data_path
    ducklake_catalog: str = ""  # a libpq connection string to the catalog's Postgres database
    ducklake_data_path: str = ""  # where the lake's Parquet files go
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS  # a held DuckDB file is waited for
    # Domo's options ({name: on}, BOOKER_INCLUDE_EXPIRED...): what every load uses unless a
    # run's config says otherwise
    options: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(OPTION_NAMES, False))
    lookahead_days: int = DEFAULT_LOOKAHEAD_DAYS  # the book ahead: days after the loaded day
    pii_key: PiiKey | None = None  # BOOKER_PII_KEY, for pii="hash"; its repr hides it

    def __post_init__(self) -> None:
        check_pii(self.pii, self.pii_key)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        msg = f"{name}={raw!r} is not a whole number"
        raise BookerConfigError(msg, fix=f"set {name}={default}") from None
    if value < minimum:
        raise BookerConfigError(f"{name}={value} is below {minimum}", fix=f"set {name}>={minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip() or str(default)
    try:
        value = float(raw)
    except ValueError:
        raise BookerConfigError(f"{name}={raw!r} is not a number",
                                fix=f"set {name}={default:g}") from None
    if value < 0:
        raise BookerConfigError(f"{name}={raw} is negative", fix=f"set {name}={default:g}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    """``true`` or ``false`` (any case; unset or empty: false). Nothing else: a typo such as
    ``ture`` or ``yes`` must not silently load without the option."""
    raw = env.get(name, "").strip()
    if raw.lower() not in ("", "true", "false"):
        raise BookerConfigError(f"{name}={raw!r} is not true or false",
                                fix=f"set {name}=true or {name}=false (or leave it unset: false)")
    return raw.lower() == "true"


def _allowed_locations(env: Mapping[str, str]) -> tuple[str, ...]:
    """The optional allow-list: BOOKER_LOCATION_IDS, else the locations file if it exists.

    Empty (the default) is Domo's "all locations": every location the token sees, including
    one that opens later.
    """
    raw = env.get("BOOKER_LOCATION_IDS", "").strip()
    source = "BOOKER_LOCATION_IDS"
    path = Path(env.get("BOOKER_LOCATIONS_FILE", "booker_locations.txt"))
    if not raw and path.exists():
        raw, source = path.read_text().replace("\n", ","), str(path)
    ids = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    bad = [i for i in ids if not i.isdigit()]
    if bad:
        raise BookerConfigError(
            f"location ids must be Booker's numeric ids, got {bad} from {source}",
            fix="list numeric ids separated by commas, e.g. BOOKER_LOCATION_IDS=1001,1002, "
            "or leave it unset to load every location Booker returns",
        )
    return ids


def _start_date(env: Mapping[str, str]) -> date:
    raw = env.get("BOOKER_START_DATE", "").strip() or "2025-01-01"
    try:
        start = date.fromisoformat(raw)
    except ValueError:
        raise BookerConfigError(
            f"BOOKER_START_DATE={raw!r} is not a date", fix="use YYYY-MM-DD, e.g. 2025-01-01"
        ) from None
    if start > date.today():
        raise BookerConfigError(
            f"BOOKER_START_DATE={raw} is in the future: there would be no partitions",
            fix="set BOOKER_START_DATE to the first day you want loaded, today or earlier",
        )
    return start


def _duckdb_path(env: Mapping[str, str]) -> str:
    """The database path, if its file (and the lock file beside it) can be written."""
    raw = env.get("BOOKER_DUCKDB_PATH", "").strip() or DEFAULT_DUCKDB_PATH
    path = Path(raw).expanduser()
    folder = next(p for p in path.parents if p.exists())  # missing folders are created later
    if path.is_dir():
        cause = "it is a directory"
    elif not folder.is_dir():
        cause = f"{folder} is a file, not a directory"
    elif not os.access(folder, os.W_OK | os.X_OK) or (
            path.exists() and not os.access(path, os.W_OK)):
        cause = f"{path if path.exists() else folder} is not writable"
    else:
        return raw
    raise BookerConfigError(
        f"BOOKER_DUCKDB_PATH={raw} cannot be written: {cause}",
        fix=f"point BOOKER_DUCKDB_PATH at a file in a writable directory, e.g. "
            f"{DEFAULT_DUCKDB_PATH}",
    )


def _owners(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("BOOKER_OWNERS", "").strip()
    owners = tuple(dict.fromkeys(o.strip() for o in raw.split(",") if o.strip()))
    # Dagster's own rule for an owner: an email address or a "team:" name.
    bad = [o for o in owners if not (o.startswith("team:") and len(o) > 5)
           and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", o)]
    if bad:
        raise BookerConfigError(
            f"BOOKER_OWNERS lists {', '.join(map(repr, bad))}: an owner is an email address or "
            f"team:<name>", fix=f"e.g. BOOKER_OWNERS=ana@example.com,{DEFAULT_OWNERS[0]}")
    return owners or DEFAULT_OWNERS


def uses_sandbox(env: Mapping[str, str]) -> bool:
    """No credential and no base URL in the environment (or BOOKER_BASE_URL=sandbox): the
    embedded sandbox."""
    base_url = env.get(BASE_URL_VAR, "").strip()
    return base_url == SANDBOX_BASE_URL or not (
        base_url or any(env.get(name) for name in CREDENTIAL_VARS))


def _warehouse(env: Mapping[str, str]) -> dict[str, str]:
    """BOOKER_WAREHOUSE and, for ``ducklake``, its catalog and data path."""
    kind = env.get("BOOKER_WAREHOUSE", "").strip().lower() or WAREHOUSES[0]
    if kind not in WAREHOUSES:
        raise BookerConfigError(f"BOOKER_WAREHOUSE={kind!r} is not a warehouse",
                                fix=f"set BOOKER_WAREHOUSE to one of {', '.join(WAREHOUSES)}")
    if kind == "duckdb":
        return {"warehouse": kind}
    catalog = env.get("BOOKER_DUCKLAKE_CATALOG", "").strip()
    data_path = env.get("BOOKER_DUCKLAKE_DATA_PATH", "").strip()
    if not catalog or not data_path:
        raise BookerConfigError(
            "BOOKER_WAREHOUSE=ducklake needs BOOKER_DUCKLAKE_CATALOG and BOOKER_DUCKLAKE_DATA_PATH",
            fix="set BOOKER_DUCKLAKE_CATALOG='host=db.internal dbname=booker_lake user=booker' "
                "(the catalog's Postgres database) and BOOKER_DUCKLAKE_DATA_PATH to the directory "
                "every host writes the lake's files to")
    if re.search(r"password\s*=|://[^/@]*:[^/@]*@", catalog):
        raise BookerConfigError(
            "BOOKER_DUCKLAKE_CATALOG holds a password: it would be stored with the IO manager's "
            "configuration in Dagster's records and shown in its UI",
            fix="drop it from the connection string and give it to libpq as PGPASSWORD or in "
                "~/.pgpass")
    return {"warehouse": kind, "ducklake_catalog": catalog, "ducklake_data_path": data_path}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; a bad one raises BookerConfigError naming the fix."""
    env = os.environ if env is None else env
    use_sandbox = uses_sandbox(env)
    return Settings(
        use_sandbox=use_sandbox,
        allowed_locations=_allowed_locations(env),
        start_date=_start_date(env),
        duckdb_path=_duckdb_path(env),
        lookback_days=_int(env, "BOOKER_LOOKBACK_DAYS", 7),
        grace_hours=_float(env, "BOOKER_GRACE_HOURS", 2),
        catch_up_days=_int(env, "BOOKER_CATCH_UP_DAYS", 3, minimum=1),
        **_pii(env),
        rate=rate_settings(env),
        owners=_owners(env),
        lock_wait_seconds=_float(env, "BOOKER_LOCK_WAIT_SECONDS", DEFAULT_LOCK_WAIT_SECONDS),
        options={name: _flag(env, option_setting(name)) for name in OPTION_NAMES},
        lookahead_days=_int(env, "BOOKER_LOOKAHEAD_DAYS", DEFAULT_LOOKAHEAD_DAYS, minimum=1),
        **_warehouse(env),
    )


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first is the default), in any case."""
    value = env.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise BookerConfigError(f"{name}={value!r} is not one of {', '.join(choices)}",
                                fix=f"set {name} to {choices[0]}")
    return value


def rate_settings(env: Mapping[str, str]) -> RateSettings:
    """BOOKER_REQUESTS_PER_SECOND, BOOKER_RATE_BUCKET (with its BOOKER_RATE_POSTGRES_DSN),
    BOOKER_RATE_MODE and BOOKER_RATE_CEILING."""
    rate = _float(env, "BOOKER_REQUESTS_PER_SECOND", DEFAULT_REQUESTS_PER_SECOND)
    if rate == 0:
        raise BookerConfigError("BOOKER_REQUESTS_PER_SECOND=0 would send nothing",
                                fix=f"set it to {DEFAULT_REQUESTS_PER_SECOND:g} or more")
    bucket = _choice(env, "BOOKER_RATE_BUCKET", BUCKETS)
    if bucket == "postgres" and not env.get("BOOKER_RATE_POSTGRES_DSN", "").strip():
        raise BookerConfigError(
            "BOOKER_RATE_BUCKET=postgres needs the database: BOOKER_RATE_POSTGRES_DSN is not set",
            fix="set BOOKER_RATE_POSTGRES_DSN to a libpq DSN or URL of the deployment's "
                "PostgreSQL, e.g. postgresql://booker@db:5432/dagster")
    mode = _choice(env, "BOOKER_RATE_MODE", MODES)
    ceiling = _float(env, "BOOKER_RATE_CEILING", 0)
    if mode == "adaptive" and ceiling and ceiling < rate:
        raise BookerConfigError(f"the rate ceiling {ceiling:g} is below the rate {rate:g}",
                                fix="set BOOKER_RATE_CEILING at or above "
                                    "BOOKER_REQUESTS_PER_SECOND")
    return RateSettings(rate, bucket, mode, ceiling)


def _pii(env: Mapping[str, str]) -> dict[str, Any]:
    """BOOKER_PII, and BOOKER_PII_KEY for ``hash``; the key's value never enters a message."""
    mode = env.get("BOOKER_PII", "keep").strip().lower() or "keep"
    if mode != "hash":
        return {"pii": mode}  # Settings refuses an unknown mode
    secret = env.get("BOOKER_PII_KEY", "").strip()
    if not secret:
        raise missing_pii_key()
    return {"pii": mode, "pii_key": PiiKey(secret)}
