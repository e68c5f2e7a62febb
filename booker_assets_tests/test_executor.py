"""The client's one executor: nested maps never deadlock and never add threads."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import FIRST_COMPLETED, wait

import pytest
import responses

from booker_assets.api.executor import BoundedExecutor
from booker_assets_tests.test_client import BASE, ORDERS, add_token, envelope, make_client

DEADLINE = 30.0  # seconds: a deadlock fails the test instead of hanging the suite


def finishes(fn, *args):
    """``fn(*args)`` on a helper thread; its result, or a failure if it does not finish."""
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    helper = threading.Thread(target=run, daemon=True)
    helper.start()
    helper.join(DEADLINE)
    assert not helper.is_alive(), "deadlock: the call did not finish"
    if "error" in box:
        raise box["error"]
    return box["result"]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_nested_map_three_deep_never_deadlocks(workers):
    executor = BoundedExecutor(workers)

    def leaf(i: int, j: int, k: int) -> int:
        time.sleep(0.001)
        return 100 * i + 10 * j + k

    def middle(i: int, j: int) -> list[int]:
        return executor.map(lambda k: leaf(i, j, k), range(3))

    def outer(i: int) -> list[list[int]]:
        return executor.map(lambda j: middle(i, j), range(3))

    got = finishes(executor.map, outer, range(5))

    assert got == [[[100 * i + 10 * j + k for k in range(3)] for j in range(3)]
                   for i in range(5)]
    assert executor.threads <= workers


def test_every_worker_waiting_on_nested_work_still_finishes():
    # Each outer task holds its worker until all outer tasks have started: every worker then
    # waits on its own nested map at once, the case a plain fixed pool deadlocks on.
    executor = BoundedExecutor(2)
    started = threading.Barrier(2, timeout=DEADLINE)

    def outer(i: int) -> int:
        started.wait()
        return sum(executor.map(lambda j: i * j, range(10)))

    assert finishes(executor.map, outer, range(2)) == [0, 45]


def test_a_waiting_worker_runs_its_own_queued_tasks_not_others():
    executor = BoundedExecutor(1)
    ran_on: list[str] = []

    def inner(j: int) -> int:
        ran_on.append(threading.current_thread().name)
        return j

    def outer(i: int) -> list[int]:
        return executor.map(inner, range(3))

    assert finishes(executor.map, outer, range(2)) == [[0, 1, 2]] * 2
    assert len(set(ran_on)) == 1 and ran_on[0].startswith("booker-")


def test_first_error_in_input_order_cancels_the_queued_rest():
    executor = BoundedExecutor(1)
    ran: list[int] = []

    def work(item: int) -> int:
        ran.append(item)
        if item in (2, 3):
            raise ValueError(f"bad {item}")
        return item

    def outer(_: int) -> list[int]:
        return executor.map(work, range(8))

    with pytest.raises(ValueError, match="bad 2"):
        finishes(executor.map, outer, range(1))
    assert ran == [0, 1, 2]  # run inline in order; the rest cancelled before they started


def test_submitted_futures_work_with_concurrent_futures_wait():
    executor = BoundedExecutor(2)
    futures = [executor.submit(lambda n: n * n, n) for n in range(6)]
    done, _ = wait(futures, timeout=DEADLINE)
    assert len(done) == 6 and [f.result() for f in futures] == [n * n for n in range(6)]
    first, _ = wait([executor.submit(time.sleep, 0.01)], return_when=FIRST_COMPLETED)
    assert len(first) == 1


def test_idle_workers_retire():
    executor = BoundedExecutor(3, idle_seconds=0.05)
    assert executor.map(lambda n: n, range(9)) == list(range(9))
    deadline = time.monotonic() + DEADLINE
    while executor.threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert executor.threads == 0
    assert executor.map(lambda n: n + 1, range(3)) == [1, 2, 3]  # new workers start on demand


@responses.activate
def test_fetch_with_nested_maps_stays_within_max_in_flight_threads():
    # locations × days × pages: three levels of map, as an asset step fetches reports.
    add_token()
    alive: list[int] = []

    def reply(request):
        alive.append(threading.active_count())
        time.sleep(0.002)
        number = json.loads(request.body)["PageNumber"]
        ids = list(range(1, 11))[2 * (number - 1):2 * number]
        return 200, {}, json.dumps(envelope([{"ID": i} for i in ids], 10))

    responses.add_callback(responses.POST, BASE + ORDERS, callback=reply)
    client, _ = make_client(page_size=2, max_in_flight=3)
    baseline = threading.active_count()

    def day(location: int, number: int) -> int:
        return len(client.find(ORDERS, "Results", {"Day": number}, report="orders").rows)

    def location(number: int) -> list[int]:
        return client.map(lambda d: day(number, d), range(3))

    got = finishes(client.map, location, range(4))

    assert got == [[10, 10, 10]] * 4
    assert len(alive) == 4 * 3 * 5
    # the helper thread of ``finishes`` and the client's 3 workers; nothing per map call
    assert max(alive) <= baseline + 1 + 3, (baseline, max(alive))
    assert client.executor.threads <= 3


def test_a_free_worker_serves_the_earliest_submitted_task_first():
    """A step's reports complete one after the other (stored while the others still fetch):
    a queued subtask of an earlier top-level task goes before one of a later task, even one
    queued before it."""
    executor = BoundedExecutor(3)
    gate, a_go, end = threading.Event(), threading.Event(), threading.Event()
    queued, ran = {"a": threading.Event(), "b": threading.Event()}, []

    def top(name: str, go: threading.Event | None) -> None:
        if go is not None:
            assert go.wait(DEADLINE)
        sub = executor.submit(ran.append, name)
        queued[name].set()
        assert end.wait(DEADLINE)
        executor.gather([sub])

    blocker = executor.submit(gate.wait, DEADLINE)  # holds the third worker
    first = executor.submit(top, "a", a_go)  # earlier task, queues its subtask later
    second = executor.submit(top, "b", None)
    assert queued["b"].wait(DEADLINE)
    a_go.set()
    assert queued["a"].wait(DEADLINE)
    gate.set()  # the blocker's worker is free: it takes one of the two queued subtasks
    deadline = time.monotonic() + DEADLINE
    while not ran and time.monotonic() < deadline:
        time.sleep(0.01)
    end.set()
    finishes(lambda: [f.result() for f in (blocker, first, second)])
    assert ran[0] == "a"
