"""Paginator: every row of one paged Find call (contract
``docs/booker-api.md`` §4).

A request's path — resource → view → **paginator** → retry → auth → send → classify.

A call: page 1, then pages 2 … ⌈TotalResultsCount / PageSize⌉ side by side
(``map`` on the client's executor), then page after page while the rows read fall short of
the count, because a short page is not the end: reading stops at an empty page or once the
rows reach ``TotalResultsCount`` (without a count: at an empty page).

Rows read must match ``TotalResultsCount``; any other number is a ``BookerCountMismatch``.

``FindResult`` gives the call's counts: ``pages`` read and ``requests`` sent for the call
(every retry and renewal included).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from booker_assets.errors import BookerCountMismatch


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


class Tally:
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


class Paginator:
    """Reads one call: ``fetch(number, tally)`` gets a page, ``map_pages`` fans pages out."""

    def __init__(self, fetch: Callable[[int, Tally], Page], *, page_size: int, where: str,
                 map_pages: Callable[[Callable[[int], Page], Iterable[int]], list[Page]]) -> None:
        self._fetch, self._page_size, self._where = fetch, page_size, where
        self._map_pages = map_pages

    def read(self) -> FindResult:
        tally = Tally()
        read = self.read_once(tally)
        if read.total is not None and len(read.rows) != read.total:
            raise BookerCountMismatch(
                f"read {len(read.rows)} rows in {read.pages} pages but Booker announced "
                f"TotalResultsCount {read.total} (data changed while paging?)",
                where=self._where, fix="re-run the partition; if it persists, lower page_size",
            )
        return FindResult(rows=read.rows, total=read.total, pages=read.pages,
                          requests=tally.count)

    def read_once(self, tally: Tally) -> _Read:
        """Page 1, the pages its count announces, then pages until empty or complete."""
        def page(number: int) -> Page:
            return self._fetch(number, tally)

        first = page(1)
        rows, total = list(first.rows), first.total
        pages = 1
        if rows and total is not None and len(rows) < total:
            last = math.ceil(total / self._page_size)
            for more in self._map_pages(page, range(2, last + 1)):
                rows.extend(more.rows)
            pages = last
        while rows and (total is None or len(rows) < total):
            pages += 1
            more = page(pages)
            if not more.rows:
                break
            rows.extend(more.rows)
        return _Read(rows, total, pages)
