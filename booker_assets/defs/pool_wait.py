"""A step waiting for a pool slot sleeps between checks, and stops on SIGTERM or SIGINT.

In Dagster 1.13, an in-process run whose step waits for a ``booker_api`` slot (the demo, the
CLI, and every run of this code location: its executor is in-process) loops in
``inner_plan_execution_iterator``: ``get_next_step()`` then ``sleep_til_ready()``. The sleep
is ``InstanceConcurrencyContext.interval_to_next_pending_claim_check()``, which returns
``min([0, ...])``, never above 0: the loop never sleeps (~60,000 turns a second, a core at
50-97 %). And the run's ``capture_interrupts()`` turns SIGTERM and SIGINT into a flag that
only user code reads: the waiting run ignores both, and the UI's Terminate (a SIGINT the run
worker sends itself) too. It then claims the next free slot, ahead of live runs, only to fail.

The fix replaces that one method. Why not the alternatives: no setting or environment variable
changes the interval; a watchdog thread raising into the main thread (``PyThreadState_
SetAsyncExc``) would stop the run at whatever line it is on, does not stop the spin, and needs
a thread per run; ``granularity: run`` waits in the queue instead, but then in-process runs
ignore the pool. The replaced method is called only from that loop, on the run's thread,
between claims: raising ``DagsterExecutionInterruptedError`` there unwinds as an interrupted
step would. The run ends failed (or canceled, when terminated from the UI) and its
``InstanceConcurrencyContext`` withdraws the pending claim on the way out.

Upstream: dagster-io/dagster#20367 ("fix pending claim check sleep intervals", closed
unmerged) found the zero sleep; the multiprocess executor already polls
``check_for_interrupts()`` in its loop. Remove this module once a Dagster release does both.
"""

from __future__ import annotations

import time

import dagster as dg
from dagster._core.execution.plan.instance_concurrency_context import (
    InstanceConcurrencyContext,
)
from dagster._utils.interrupts import pop_captured_interrupt

# How long a waiting run may take to notice SIGTERM; a turn of the loop costs microseconds, and
# a claim only queries the database once its own back-off (1 s, up to 15 s) is due.
MAX_WAIT_S = 0.5


def interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    """Seconds to sleep before the next claim is due (at most ``MAX_WAIT_S``); raises
    ``DagsterExecutionInterruptedError`` if the run received SIGTERM or SIGINT meanwhile."""
    if pop_captured_interrupt():
        raise dg.DagsterExecutionInterruptedError(
            "Interrupted (SIGTERM or SIGINT) while waiting for a pool slot")
    if not self._pending_claims:
        return 0.0
    now = time.time()
    due = min((at - now for at in self._pending_timeouts.values()), default=0.0)
    return min(max(due, 0.0), MAX_WAIT_S)


def install() -> None:
    """Replace Dagster's method (idempotent); fails loudly if Dagster no longer has it."""
    original = InstanceConcurrencyContext.interval_to_next_pending_claim_check
    if original is not interval_to_next_pending_claim_check:
        InstanceConcurrencyContext.interval_to_next_pending_claim_check = (
            interval_to_next_pending_claim_check)
