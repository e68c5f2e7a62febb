"""The client's one bounded executor: every thread the client runs is one of its workers.

Tasks nest: an asset step maps over (report, location) fetches, a fetch maps over its days or
parents, a Find maps over its pages. With a thread pool per ``map`` that was up to ~1,000
threads waiting on 8 request slots; with one fixed pool and blocking waits, a task that waits
for its own subtasks while every worker does the same would deadlock.

This executor is *work-helping*: ``max_workers`` threads at most, started on demand and
retired after ``idle_seconds`` without work. A worker that waits for subtasks (``gather``, and
so ``map``) first takes its own still-queued subtasks off the queue and runs them itself, then
blocks only for those that another worker already runs. It never picks up unrelated work
while waiting, so a wait is never stuck behind a long foreign task. No deadlock: whatever a
waiting worker waits for is either queued (it runs it) or running on a thread that only ever
waits for deeper subtasks, and the nesting is finite. A free worker takes a queued task of the
earliest top-level task (its subtasks included), the deepest first: started work finishes
before later work begins, so the tasks submitted first (an asset step's reports) complete one
after the other while the later ones still use the rate budget, and each is stored meanwhile,
not all of them after the last request (issue 24). Threads that are not workers (the
caller's own) just wait: they never run tasks, so at most ``max_workers`` tasks run at once.
Inside a task, wait for subtasks with ``map`` or ``gather``: a bare ``Future.result()`` does
not help and could deadlock.

A request's path — resource → view → paginator → retry → auth → send → classify — runs on the
calling thread or on one of these workers; ``map`` is how the view and the paginator fan out.
Futures are ``concurrent.futures.Future``s (``wait``, ``as_completed`` work on them). The
bound on requests in flight (contract ``docs/booker-api.md`` §3) stays ``transport.py``'s:
callers' own threads send requests too.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Task(Future):
    """A queued call; ``claimed`` once a thread has taken it off the queue. ``root``: the
    order of the top-level task it descends from (its own, for a top-level task)."""

    def __init__(self, fn: Callable[[], Any], depth: int, root: int) -> None:
        super().__init__()
        self.fn, self.depth, self.root, self.claimed = fn, depth, root, False


class BoundedExecutor:
    """At most ``max_workers`` threads; ``map``/``gather`` are safe inside its own tasks."""

    def __init__(self, max_workers: int, *, name: str = "booker",
                 idle_seconds: float = 2.0) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers, self._name, self._idle_seconds = max_workers, name, idle_seconds
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        # (root, -depth, order, task): the earliest top-level task's subtree, deepest first
        self._queue: list[tuple[int, int, int, _Task]] = []
        self._order = itertools.count()
        self._names = itertools.count(1)
        self._pending = 0  # unclaimed tasks in the queue
        self._threads = 0
        self._idle = 0
        self._retire = False
        self._local = threading.local()  # .depth, .root while this thread runs our task

    @property
    def threads(self) -> int:
        """Worker threads alive now."""
        with self._lock:
            return self._threads

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        depth, order = self._depth(), next(self._order)
        task = _Task(functools.partial(fn, *args, **kwargs), 0 if depth is None else depth + 1,
                     order if depth is None else self._local.root)
        with self._lock:
            self._retire = False
            heapq.heappush(self._queue, (task.root, -task.depth, order, task))
            self._pending += 1
            if self._pending > self._idle and self._threads < self.max_workers:
                self._threads += 1
                threading.Thread(target=self._worker, daemon=True,
                                 name=f"{self._name}-{next(self._names)}").start()
            self._work.notify()
        return task

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` over ``items``, results in input order; the first error (in input order) is
        raised once the calls already running have ended, and the queued ones are cancelled."""
        return self.gather([self.submit(fn, item) for item in items])

    def gather(self, futures: Sequence[Future[R]]) -> list[R]:
        """The results of ``futures`` in order. Inside a task, runs its own queued ones."""
        try:
            if self._depth() is not None:
                for future in futures:
                    if isinstance(future, _Task) and self._claim(future):
                        self._run(future)
                        if future.cancelled() or future.exception() is not None:
                            break
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                self._cancel(future)
            wait(futures)
            raise

    def shutdown(self) -> None:
        """Retire the idle workers now (a later ``submit`` starts new ones)."""
        with self._lock:
            self._retire = True
            self._work.notify_all()

    # ----- workers ------------------------------------------------------------------------

    def _depth(self) -> int | None:
        return getattr(self._local, "depth", None)

    def _claim(self, task: _Task) -> bool:
        with self._lock:
            if task.claimed:
                return False
            task.claimed = True
            self._pending -= 1
            return True

    def _cancel(self, future: Future) -> None:
        """Cancel ``future`` if it has not started; a queued task of ours is also settled
        here (``wait`` counts a cancelled future as done only once it is settled)."""
        if future.cancel() and isinstance(future, _Task) and self._claim(future):
            future.set_running_or_notify_cancel()

    def _next(self) -> _Task | None:
        """The deepest unclaimed task, claimed; None when the queue is empty (lock held)."""
        while self._queue:
            task = heapq.heappop(self._queue)[-1]
            if not task.claimed:
                task.claimed = True
                self._pending -= 1
                return task
        return None

    def _worker(self) -> None:
        while True:
            with self._lock:
                task = self._next()
                while task is None:  # idle: wait for work, retire after idle_seconds
                    if self._retire:
                        self._threads -= 1
                        return
                    self._idle += 1
                    notified = self._work.wait(self._idle_seconds)
                    self._idle -= 1
                    task = self._next()
                    if task is None and not notified:
                        self._threads -= 1
                        return
            self._run(task)

    def _run(self, task: _Task) -> None:
        if not task.set_running_or_notify_cancel():
            return
        outer = self._depth(), getattr(self._local, "root", None)
        self._local.depth, self._local.root = task.depth, task.root
        try:
            result = task.fn()
        except BaseException as exc:  # the caller of result() gets it
            task.set_exception(exc)
        else:
            task.set_result(result)
        finally:
            self._local.depth, self._local.root = outer
            task.fn = None  # type: ignore[assignment]  # drop the arguments with the call
