"""A CPU budget for shadow work, which shares the event loop and the core with client requests.

Shadow work may use at most `share` of one core: all the gateway does for a shadow, not only
the candidate's steps on the loop (gateway/shadow.py: reading and copying the request,
capturing the owner's answer, handing the job to a worker, then every step of the job: the
copies, the candidate, the comparison, its record, the metrics). It is measured as it runs,
as the wall time each step holds the loop (what delays client requests; on a core other
processes share, that is more than its CPU time, so the budget gets stricter, never looser),
and a bucket refills at that rate, so over any second shadows get at most `share` of the
loop (plus the one shadow that overdraws it, which the next ones pay back). A shadow that
finds the bucket empty is skipped and counted (reason `budget`): a busy server compares a
sample of its shadows instead of slowing its clients.

The bucket holds at most `burst` seconds of work (5 ms by default), however long the gateway
was idle: that is the most shadow work that can land at once on the client requests arriving
after an idle spell. It used to hold one second's share (50 ms at 5 %), and the bench's open
loop found it: every measurement began with a 50 ms burst of shadows, spent within its first
0.2 s, and the 280 requests that arrived meanwhile waited 6-15 ms, enough to set the p99 of
16,000 (bench/PROFILE.md, "Round two, fifth pass").

Shadows also yield to a busy gateway: every SAMPLE_S the process's CPU time is read, and
while the process (client requests, their legacy threads and shadows) uses more than
`ceiling` of a core, shadows get only what is left below it, and never less than `floor`.
A gateway at 85 % of a core, as the bench's open loop at half its closed-loop capacity is,
has no headroom: another 5 % of shadow work there put it at the knee where queues grow, and
the primary's p99 rose 3x (bench/RESULTS.md, 2026-12-04); at the floor, a saturated server
still compares a trickle of its shadows.

Why a share of a core and not of what the process uses: an idle gateway can afford every
shadow, and one core is all an event loop ever gets. Why not a gate instead (shadows only
while no client request is in flight): once a candidate's step runs nothing preempts it on
one loop, and shadows run in the gap after their own request anyway; a gate only delayed
them, and under a closed loop (never idle) filled the queue (bench/SHADOW_ISOLATION.md).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


SAMPLE_S = 0.1  # how often the process's CPU time is read: a syscall, not on every request
BURST_S = 0.005  # the most shadow work the bucket lets run back to back (GATEWAY_SHADOW_CPU_BURST_MS)


class CpuBudget:
    def __init__(
        self,
        share: float,
        *,
        burst: float = BURST_S,
        clock: Callable[[], float] = time.perf_counter,
        ceiling: float = 1.0,
        floor: float = 0.0,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.share = share
        self.capacity = min(share, burst)  # CPU seconds the bucket holds (a second's share at most)
        # what shadow work is measured with too (the runner times its own steps by it)
        self.clock = clock
        self.ceiling, self.floor = ceiling, min(floor, share)
        self.rate = share  # the refill rate now: `share`, less when the process is busy
        self._cpu_clock = cpu_clock
        self._tokens = self.capacity
        self._at = self._sampled = clock()
        self._cpu = cpu_clock()
        self._used_then = 0.0
        self.used = 0.0  # CPU seconds charged in all (tests, and the logs of a stopping gateway)

    @property
    def unlimited(self) -> bool:
        return self.share >= 1

    # both are on every shadowed request's path: kept to a call each
    def allows(self) -> bool:
        if self.share >= 1:
            return True
        now = self.clock()
        if now - self._sampled >= SAMPLE_S:
            self._adapt(now)
        self._tokens = tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return tokens > 0

    def charge(self, seconds: float) -> None:
        self.used += seconds
        if self.share < 1:
            now = self.clock()
            # may go below zero: one long shadow pays over the next ones
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate) - seconds
            self._at = now

    def _adapt(self, now: float) -> None:
        """The refill rate from the last sample's CPU time: what the process used apart from
        shadows, and what is left of `ceiling` after it."""
        cpu = self._cpu_clock()
        span = now - self._sampled
        busy = (cpu - self._cpu) / span
        shadows = (self.used - self._used_then) / span  # their wall time: at least their CPU
        self.rate = max(self.floor, min(self.share, self.ceiling - max(0.0, busy - shadows)))
        self._sampled, self._cpu, self._used_then = now, cpu, self.used


class _Metered(Generic[T]):
    """Awaits `coro`, charging the time each of its steps holds the loop (not the time it waits)."""

    __slots__ = ("_charge", "_clock", "_coro")

    def __init__(
        self, coro: Awaitable[T], charge: Callable[[float], None], clock: Callable[[], float]
    ) -> None:
        self._coro = coro.__await__()
        self._charge = charge
        self._clock = clock

    def __await__(self) -> Generator[Any, Any, T]:
        step, charge, clock = self._coro, self._charge, self._clock
        value: Any = None
        error: BaseException | None = None
        while True:
            started = clock()
            try:
                yielded = step.throw(error) if error is not None else step.send(value)
            except StopIteration as done:
                charge(clock() - started)
                result: T = done.value
                return result
            except BaseException:
                charge(clock() - started)
                raise
            charge(clock() - started)
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # cancellation (a timeout) goes on into the candidate
                value, error = None, exc


def metered(
    coro: Awaitable[T], charge: Callable[[float], None], clock: Callable[[], float] = time.perf_counter
) -> Awaitable[T]:
    """Awaits `coro`, charging each of its steps. Only steps run in the awaiting task are seen:
    what `coro` hands to another task is not charged (`asyncio.wait_for` runs its awaitable in a
    task of its own on Python 3.11, `asyncio.timeout` keeps it in the same task). An awaitable,
    not a coroutine: on a shadowed request's path, a frame less."""
    return _Metered(coro, charge, clock)
