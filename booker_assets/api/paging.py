"""Paginator: every row of one paged Find call, read consistently (contract
``docs/booker-api.md`` §4).

A request's path — resource → view → **paginator** → retry → auth → send → classify.

One read of a call: page 1, then pages 2 … ⌈TotalResultsCount / PageSize⌉ side by side
(``map`` on the client's executor), then page after page while the rows read fall short of
the count, because a short page is not the end: reading stops at an empty page or once the
rows reach ``TotalResultsCount`` (without a count: at an empty page).

Booker's list can move while it is paged (a row deleted, one added). Rows are sorted by ID
within a call, so a move shows as one of:

- a key (``key_field``: ``ID``; ``CustomerID`` for the customer wrappers) read twice: rows
  moved back one place between two pages;
- a page announcing another ``TotalResultsCount`` than page 1 did;
- a number of rows other than the announced count.

Then the whole call is read again, ``MAX_READS`` reads at most; a read that shows none of
these is the result, so no row is ever returned twice. A list still moving after the last read
is a ``BookerCountMismatch`` (transient: it heals once the data stops moving). Not detectable
from the pages alone: a row deleted from a page already read *and* one added behind the last
page between two pages leave no duplicate and an unchanged count; one row is then missed.

``FindResult`` gives the call's counts: ``pages`` of the read returned, ``requests`` sent for
the whole call (every read, retry and renewal), ``reads``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from booker_assets.errors import BookerCountMismatch

log = logging.getLogger("booker_assets.api.client.paging")

MAX_READS = 3


class Page(NamedTuple):
    rows: list[dict]
    total: int | None  # the page's TotalResultsCount


@dataclass(frozen=True)
class FindResult:
    """All rows of a paged Find call, in server order."""

    rows: list[dict]
    total: int | None
    pages: int
    requests: int
    reads: int = 1


class RequestCount:
    """Requests sent on behalf of one call (its pages run on several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1


class _Read(NamedTuple):
    rows: list[dict]
    total: int | None
    pages: int
    moved: list[str]  # how this read shows that the list moved; empty: consistent


class Paginator:
    """Reads one call: ``fetch(number, counter)`` gets a page, ``map_pages`` fans pages out."""

    def __init__(self, fetch: Callable[[int, RequestCount], Page], *, page_size: int, where: str,
                 map_pages: Callable[[Callable[[int], Page], Iterable[int]], list[Page]],
                 key_field: str | None = "ID", max_reads: int = MAX_READS,
                 on_reread: Callable[[], None] = lambda: None) -> None:
        self._fetch, self._page_size, self._where = fetch, page_size, where
        self._map_pages, self._key_field = map_pages, key_field
        self._max_reads, self._on_reread = max_reads, on_reread

    def read(self) -> FindResult:
        counter = RequestCount()
        for number in range(1, self._max_reads + 1):
            read = self.read_once(counter)
            if not read.moved:
                return FindResult(rows=read.rows, total=read.total, pages=read.pages,
                                  requests=counter.count, reads=number)
            if number < self._max_reads:
                log.warning("%s: the list moved while it was paged (%s); read %d/%d",
                            self._where, "; ".join(read.moved), number + 1, self._max_reads)
                self._on_reread()
        raise BookerCountMismatch(
            f"{'; '.join(read.moved)} (the list moved while it was paged, in each of "
            f"{self._max_reads} reads)",
            where=self._where, fix="re-run the partition; if it persists, lower page_size",
        )

    def read_once(self, counter: RequestCount) -> _Read:
        """Page 1, the pages its count announces, then pages until empty or complete."""
        def page(number: int) -> Page:
            return self._fetch(number, counter)

        first = page(1)
        rows, total, totals = list(first.rows), first.total, [first.total]
        pages = 1
        if rows and total is not None and len(rows) < total:
            last = math.ceil(total / self._page_size)
            for more in self._map_pages(page, range(2, last + 1)):
                rows.extend(more.rows)
                totals.append(more.total)
            pages = last
        while rows and (total is None or len(rows) < total):
            pages += 1
            more = page(pages)
            totals.append(more.total)
            if not more.rows:
                break
            rows.extend(more.rows)
        return _Read(rows, total, pages, self.moved(rows, total, totals, pages))

    def moved(self, rows: list[dict], total: int | None, totals: list[int | None],
              pages: int) -> list[str]:
        """How the rows of one read show that the list moved (empty: they do not)."""
        moved = []
        changed = [t for t in totals if t is not None and t != total]
        if total is not None and changed:
            moved.append(f"TotalResultsCount went from {total} to {changed[0]} between pages")
        twice = self._read_twice(rows)
        if twice is not None:
            moved.append(f"{self._key_field} {twice} read twice in {pages} pages")
        if total is not None and len(rows) != total:
            moved.append(f"read {len(rows)} rows in {pages} pages but Booker announced "
                         f"TotalResultsCount {total}")
        return moved

    def _read_twice(self, rows: list[dict]) -> str | None:
        """The first key read twice (rows without the key are not checked)."""
        if not self._key_field:
            return None
        seen: set[str] = set()
        for row in rows:
            key = row.get(self._key_field) if isinstance(row, dict) else None
            if key is None:
                continue
            text = repr(key)
            if text in seen:
                return text
            seen.add(text)
        return None
