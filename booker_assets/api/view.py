"""The view: the calls of one report (or of the whole client) and the counts they cost.

A request's path — resource → **view** → paginator → retry → auth → send → classify. A view
(``ReportView``) is where a call starts: ``find`` (paged POST), ``get``, ``location``,
``locations``, ``map``. Its ``_call`` is the pipeline below the paginator: ``with_retries``
around ``BookerAuth.renewing`` around ``Transport.send`` + ``classify`` (contract
``docs/booker-api.md``).

What a view shares and what it owns is in its type: everything in ``Shared`` (one per client:
transport, tokens, executor, retry policy, scrubber, location cache) is shared by every view
of the client; ``stats`` and the stop flag are the view's own, so that reports fetched side
by side each count their own requests and one report's failure stops only its own calls.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from booker_assets.api.auth import BRAND, BookerAuth, TokenCache
from booker_assets.api.executor import BoundedExecutor
from booker_assets.api.paging import FindResult, Page, Paginator, RequestCount
from booker_assets.api.replies import (
    TRANSPORT_FAULTS,
    Reply,
    Scrubber,
    classify,
    expect_object,
    fault,
    invisible_location,
    results,
    unwrap,
)
from booker_assets.api.retry import RetryPolicy, with_retries
from booker_assets.api.shared_replies import SharedReplies
from booker_assets.api.transport import Transport
from booker_assets.errors import BookerResponseError

T = TypeVar("T")
R = TypeVar("R")

LOCATIONS_PATH = "/v4.1/merchant/locations"
LOCATION_PATH = "/v4.1/merchant/location/{id}"


class ClientStats:
    """Thread-safe counters of one view's traffic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.pages = 0
        self.retries: Counter[str] = Counter()
        self.http_seconds = 0.0
        self.tokens = 0
        self.shared_replies = 0  # replies another run of the backfill had asked (no request)

    def add(self, *, requests: int = 0, pages: int = 0, seconds: float = 0.0, tokens: int = 0,
            retry: str | None = None, shared: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.pages += pages
            self.http_seconds += seconds
            self.tokens += tokens
            self.shared_replies += shared
            if retry:
                self.retries[retry] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "pages": self.pages,
                "retries": dict(self.retries),
                "http_seconds": round(self.http_seconds, 3),
                "tokens": self.tokens,
                "shared_replies": self.shared_replies,
            }


@dataclass(frozen=True)
class Shared:
    """One of each per client, shared by all its views."""

    page_size: int
    transport: Transport  # session, in-flight slots, the key's rate limiter
    tokens: TokenCache  # the brand token and one token per location
    executor: BoundedExecutor  # every thread the client runs
    retry: RetryPolicy
    scrubber: Scrubber  # secrets and tokens blanked from server text
    locations: dict[str, dict] = field(default_factory=dict)  # GET /location/{id} records
    locations_lock: threading.Lock = field(default_factory=threading.Lock)
    location_locks: dict[str, threading.Lock] = field(default_factory=dict)  # one per id
    listing: list[Future] = field(default_factory=list)  # the list ``locations_soon`` asked


class ReportView:
    """Calls sharing ``shared``, counted in this view's own ``stats``."""

    def __init__(self, shared: Shared, report: str = "",
                 replies: SharedReplies | None = None) -> None:
        self.shared = shared  # shared with every view of the client
        self.report = report  # own: the default name of this view's calls in errors
        self.stats = ClientStats()  # own
        self.replies = replies  # own: the replies its backfill's runs share, if any

    def view(self, report: str = "", replies: SharedReplies | None = None) -> ReportView:
        """Another view of the same client, with stats of its own; ``replies``: share the
        calls marked ``share`` with the other runs of a backfill."""
        return ReportView(self.shared, report, replies)

    @property
    def executor(self) -> BoundedExecutor:
        return self.shared.executor

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` over ``items`` on the client's executor; results in input order. Safe to
        call from inside another ``map`` (see ``executor.py``)."""
        return self.shared.executor.map(fn, items)

    # ----- public calls -------------------------------------------------------------------

    def find(self, path: str, results_key: str, body: dict | None = None, *,
             location_id: int | str | None = None, report: str = "",
             key_field: str | None = "ID", share: bool = False) -> FindResult:
        """Every row of a paged POST Find call, read consistently (``paging.py``).
        ``key_field`` is the row key: ``ID``, or e.g. ``CustomerID`` for customers.
        ``share``: as in ``get``; a kept reply cost this run no page and no request."""
        if share and self.replies is not None:
            found, kept = self._shared(
                ["POST", path, results_key, body, location_id, key_field],
                lambda: asdict(self.find(path, results_key, body, location_id=location_id,
                                         report=report, key_field=key_field)))
            result = FindResult(**found)
            return replace(result, pages=0, requests=0) if kept else result
        name = report or self.report or path

        def page(number: int, counter: RequestCount) -> Page:
            where = _where(name, location_id, number)
            payload = {**(body or {}), "UsePaging": True, "PageNumber": number,
                       "PageSize": self.shared.page_size}
            if location_id is not None:
                payload["LocationID"] = _location_value(location_id)
            reply = self._call("POST", path, where=where, scope=_scope(location_id),
                               location_id=location_id, counter=counter, json=payload)
            data = expect_object(reply.value(), where)
            rows = results(data, results_key, where, allow_object=False)
            total = data.get("TotalResultsCount")
            if total is not None and not isinstance(total, int):
                raise BookerResponseError(
                    f"TotalResultsCount is {type(total).__name__}, not int", where=where)
            self.stats.add(pages=1)
            return Page(rows, total)

        return Paginator(page, page_size=self.shared.page_size, where=_where(name, location_id),
                         map_pages=self.map, key_field=key_field,
                         on_reread=lambda: self.stats.add(retry="list_moved")).read()

    def get(self, path: str, results_key: str | None, params: dict | None = None, *,
            location_id: int | str | None = None, report: str = "",
            share: bool = False) -> list[dict] | dict:
        """A GET call: the rows under ``results_key``, or the (unwrapped) body when it is None.
        ``share``: a reply no partition day shapes, read from the backfill's shared replies."""
        if share and self.replies is not None:
            return self._shared(["GET", path, results_key, params, location_id], lambda: self.get(
                path, results_key, params, location_id=location_id, report=report))[0]
        where = _where(report or self.report or path, location_id)
        query = dict(params or {})
        if location_id is not None:
            query["LocationID"] = _location_value(location_id)
        reply = self._call("GET", path, where=where, scope=_scope(location_id),
                           location_id=location_id, params=query)
        body = expect_object(reply.value(), where)
        if results_key is None:
            return unwrap(body)
        return results(body, results_key, where, allow_object=True)

    def locations(self) -> list[dict]:
        """Every location the brand token sees: the reply of the call ``locations_soon``
        started, once; else a call now."""
        with self.shared.locations_lock:
            early = self.shared.listing.pop() if self.shared.listing else None
        return early.result() if early is not None else self._list_locations()

    def locations_soon(self) -> None:
        """Ask the locations list now, on the executor, for the next ``locations()`` (a run's
        drift check, which runs after the step): asked while the step's other requests flow,
        it costs no second of the run, where asked after the step's writes it ends the run
        with a lone request (issue 24). Used once: a later ``locations()`` asks afresh."""
        future = self.executor.submit(self._list_locations)
        with self.shared.locations_lock:
            self.shared.listing.append(future)

    def _list_locations(self) -> list[dict]:
        return self.find(LOCATIONS_PATH, "Results", report="locations").rows

    def location(self, location_id: int | str) -> dict:
        """One location's record (brand token), cached for the life of the client, and shared
        by the runs of the view's backfill."""
        key, shared = str(location_id), self.shared
        with shared.locations_lock:
            lock = shared.location_locks.setdefault(key, threading.Lock())
        # one fetch per id: the reports of a run start side by side and all ask for it first
        with lock:
            cached = shared.locations.get(key)
            if cached is None:  # the brand token's call, or another run of the backfill's reply
                def fetch() -> dict:
                    return self._location_record(location_id)

                cached = self._shared(["location", key], fetch)[0] if self.replies else fetch()
                shared.locations[key] = cached
        return cached

    def _location_record(self, location_id: int | str) -> dict:
        where = _where("location", location_id)
        reply = self._call("GET", LOCATION_PATH.format(id=str(location_id)), where=where,
                           scope=BRAND, location_id=location_id)
        if reply.not_found:
            raise invisible_location(location_id, where, reply.error.cause) from None
        return unwrap(expect_object(reply.value(), where))

    def _shared(self, call: list, fetch: Callable[[], T]) -> tuple[T, bool]:
        """The reply another run of the backfill kept, or ``fetch()``'s; and whether kept."""
        assert self.replies is not None
        reply, kept = self.replies.get_or_fetch(call, fetch)
        if kept:
            self.stats.add(shared=1)
        return reply, kept

    # ----- the pipeline: retry → auth → send → classify -----------------------------------

    def _call(self, method: str, path: str, *, where: str, scope: str | None,
              location_id: int | str | None = None, token_call: bool = False,
              counter: RequestCount | None = None, **fields: Any) -> Reply:
        """One call's final reply (ok or fatal). ``scope`` None: no token (the token call)."""
        shared = self.shared

        def sent(seconds: float) -> None:
            self.stats.add(requests=1, seconds=seconds)
            if counter is not None:
                counter.add()

        def exchange(auth: BookerAuth | None) -> Reply:
            try:
                response = shared.transport.send(method, path, auth=auth, on_sent=sent,
                                                 **fields)
            except TRANSPORT_FAULTS as exc:
                return fault(exc)
            return classify(response, where=where, scrub=shared.scrubber,
                            location_id=location_id, token_call=token_call)

        if scope is None:
            def attempt() -> Reply:
                return exchange(None)
        else:
            def attempt() -> Reply:
                return BookerAuth(shared.tokens, scope).renewing(where, exchange)

        return with_retries(attempt, where=where, policy=shared.retry,
                            on_retry=lambda kind: self.stats.add(retry=kind))


def _scope(location_id: int | str | None) -> str:
    return BRAND if location_id is None else str(location_id)


def _where(report: str, location_id: int | str | None, page: int | None = None) -> str:
    parts = [report]
    if location_id is not None:
        parts.append(f"location {location_id}")
    if page is not None:
        parts.append(f"page {page}")
    return ", ".join(parts)


def _location_value(location_id: int | str) -> int | str:
    """Booker wants numeric ids as numbers; ids read from files arrive as strings."""
    text = str(location_id).strip()
    return int(text) if text.isdigit() else text
