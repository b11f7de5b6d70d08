"""Shadow traffic: the owner answers the client, the other side answers a copy, both compared.

Reads: the owner runs as usual while its answer is captured; the copy goes to a bounded
queue that a fixed number of workers drain off the response path (a full queue skips the
shadow and counts it: nothing queues without limit). Shadows share the loop and the core
with client requests, so all shadow work runs within a CPU budget
(gateway/shadow_budget.py): over it, a shadow is skipped and counted as `budget`. Each
shadow call has a timeout, and whatever the candidate does, the client never sees it. Some
reads also run the owner a second time, so that fields that differ by themselves
(timestamps, tokens) are learnt as noise rather than reported as mismatches.

Writes (only with `unsafe: rollback`): the candidate runs first, inline, in a transaction
it cannot commit (`X-Gateway-Shadow: rollback`), against the state the owner will see;
then the owner runs for real; the comparison is queued like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter

from gateway.asgi import REQUEST_ID_KEY, ASGIApp, Message, Receive, Scope, Send
from gateway.compare import compare, compile_rules
from gateway.exchange import Capture, CapturedRequest, Difference, Side
from gateway.fallback import FELL_BACK_KEY
from gateway.map_schema import SAFE_METHODS, Owner
from gateway.metrics import GatewayMetrics
from gateway.shadow_budget import BURST_S, CpuBudget, metered
from gateway.shadow_io import (
    ResponseCapture,
    captured_request,
    read_body,
    replay,
    run_copy,
    shadow_scope,
)
from gateway.shadow_processes import NoWorker, ShadowProcesses
from gateway.table import Route

log = logging.getLogger("gateway.shadow")


class ParitySink(Protocol):
    """Where results go (the parity store's recorder). Calls must be cheap and never block."""

    def record_comparison(
        self,
        *,
        route_id: str,
        owner_side: Side,
        owner: Capture,
        candidate: Capture,
        request: CapturedRequest,
        diffs: tuple[Difference, ...],
        owner_ms: float,
        candidate_ms: float,
        redact: tuple[str, ...],
        redact_headers: tuple[str, ...] = (),
    ) -> None: ...

    def record_noise(self, *, route_id: str, diffs: tuple[Difference, ...]) -> None: ...

    def record_candidate_error(
        self, *, route_id: str, owner_side: Side, error: str, owner_ms: float, candidate_ms: float | None
    ) -> None: ...

    def record_skip(self, *, route_id: str, reason: str) -> None: ...


@dataclass(slots=True)
class Outcome:
    capture: Capture | None
    ms: float
    error: str | None = None
    skipped: str | None = None  # not run (a shadow process could not take it): the skip's reason


@dataclass(slots=True)
class _Job:
    route: Route
    owner_side: Side
    scope: Scope
    request: CapturedRequest
    owner: Capture
    owner_ms: float
    candidate: Outcome | None = None  # already run (writes run the candidate first)


class ShadowRunner:
    def __init__(
        self,
        *,
        native: ASGIApp,
        legacy: ASGIApp,
        sink: ParitySink,
        metrics: GatewayMetrics,
        concurrency: int = 8,
        queue_size: int = 100,
        cpu_budget: float = 1.0,
        cpu_ceiling: float = 1.0,
        cpu_floor: float = 0.0,
        cpu_burst: float = BURST_S,
        processes: ShadowProcesses | None = None,
    ) -> None:
        # `legacy` is a separate instance from the one serving clients: shadows get their own
        # threads and can never take one from real traffic
        self._apps = {Side.NEW: native, Side.LEGACY: legacy}
        # when set, queued copies run there, in processes of their own (gateway/shadow_processes.py)
        self.processes = processes
        self.sink = sink
        self.metrics = metrics
        self.concurrency = concurrency
        self.queue_size = queue_size
        # the share of one core shadow work may use (1: no limit), asked when a shadow is
        # wanted and again when a worker takes it from the queue; charged all the gateway does
        # for a shadow (handle, then the worker's steps on the job), never the owner's own run
        # (and what is left below `cpu_ceiling` of a core while the process is busy, at least `cpu_floor`)
        self.budget = CpuBudget(cpu_budget, ceiling=cpu_ceiling, floor=cpu_floor, burst=cpu_burst)
        self._charged = 0.0  # of budget.used, what the CPU counter has been told
        # route id -> its `budget` skip counter: the labels looked up once, not per skip
        self._budget_skips: dict[str, Counter] = {}
        self._queue: asyncio.Queue[_Job] | None = None
        self._workers: list[asyncio.Task[None]] = []
        # told of every comparison (route, differed), e.g. by guards watching mismatch rates
        self.on_result: Callable[[Route, bool], None] | None = None
        # told once of each shadowed request's final outcome, by request id (the access log):
        # "match", "diff", "error" or "skipped:<reason>"
        self.on_outcome: Callable[[str, str], None] | None = None

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)
        self._workers = [
            asyncio.create_task(self._work(), name=f"shadow-{i}") for i in range(self.concurrency)
        ]

    async def drain(self) -> None:
        """Wait until every queued comparison is done (a test harness waits so between requests)."""
        if self._queue is not None:
            await self._queue.join()

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109
        """Finish queued comparisons for up to `timeout` seconds, then drop the rest."""
        if self._queue is not None and not self._queue.empty():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout)
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._tell_cpu()

    def over_budget(self, route_id: str) -> str:
        """A shadow the dispatcher skipped for the budget before calling `handle`: counted
        (metrics, the parity record) like any skip; the outcome its access-log line carries."""
        counter = self._budget_skips.get(route_id)
        if counter is None:
            counter = self._budget_skips[route_id] = self.metrics.shadow_skipped.labels(route_id, "budget")
        counter.inc()
        self.sink.record_skip(route_id=route_id, reason="budget")
        return "skipped:budget"

    def wanted(self, route: Route, method: str) -> bool:
        rules = route.shadow
        return rules.shadows(method) and (rules.sample >= 1 or random.random() < rules.sample)

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, route: Route, owner_app: ASGIApp, owner: Owner
    ) -> None:
        """`owner` is the side serving this request: the map's owner, or the side a canary, a
        runtime state or an override chose; the other side gets the copy."""
        rules = route.shadow
        budget = self.budget
        # the dispatcher has asked already (its skips never get here, see over_budget); asked
        # again for other callers: one clock reading, on the few shadows the budget lets run
        if not budget.allows():
            self._skip(scope, route.id, "budget")
            await owner_app(scope, receive, send)
            return
        # all the gateway does for the shadow is charged, not the owner's own run (the primary's
        # work): reading the body (its steps, not a slow client's waits), the copies, the
        # inline candidate of a write, the capture of the answer, the hand-off to a worker.
        # Timed in segments and charged once at the end (a charge costs more than a reading)
        charge, clock = budget.charge, budget.clock
        body = await metered(read_body(receive, rules.max_body_bytes), charge, clock)
        started = clock()
        if not body.complete:
            self._skip(scope, route.id, "client_disconnected" if body.disconnected else "request_too_large")
            charge(clock() - started)
            await owner_app(scope, replay(body, receive), send)
            return
        request = captured_request(scope, body.data)
        candidate: Outcome | None = None
        if scope["method"] not in SAFE_METHODS:
            call = self._call(_other(owner), shadow_scope(scope, "rollback"), body.data, route, inline=True)
            charge(clock() - started)
            candidate = await metered(call, charge, clock)
            started = clock()
        capture = ResponseCapture(rules.max_body_bytes)
        spent = 0.0  # the segments before and after the owner's run, and the capture in between

        async def owner_send(message: Message) -> None:
            nonlocal spent
            at = clock()
            capture.feed(message)
            spent += clock() - at
            await send(message)

        owner_started = clock()
        spent += owner_started - started
        try:
            await owner_app(scope, replay(body, receive), owner_send)
            started = clock()
            owner_ms = (started - owner_started) * 1000
            if not capture.complete:
                # a new side that failed and fell back to legacy gave no answer to compare
                fell_back = scope.get(FELL_BACK_KEY)
                self._skip(scope, route.id, "owner_fell_back" if fell_back else "owner_incomplete")
            else:
                job = _Job(route, Side(owner.value), scope, request, capture.result(), owner_ms, candidate)
                assert self._queue is not None, "the shadow runner is started with the gateway"
                try:
                    self._queue.put_nowait(job)
                except asyncio.QueueFull:
                    self._skip(scope, route.id, "queue_full")
            spent += clock() - started
        finally:
            charge(spent)

    async def _work(self) -> None:
        assert self._queue is not None
        queue, budget = self._queue, self.budget
        while True:
            job = await queue.get()
            # every step of the job on the loop is charged once, here: the candidate's (run in
            # this task, see _run) as well as the copies, the comparison, its record, the
            # metrics, the outcome's report, a skip; not its waits (nor, for legacy, the shadow
            # pool's threads, bounded by their number)
            await metered(self._run_job(job, queue), budget.charge, budget.clock)
            self._tell_cpu()  # before anyone waiting for the queue to drain reads it

    async def _run_job(self, job: _Job, queue: asyncio.Queue[_Job]) -> None:
        try:
            # asked again: the shadows queued ahead of this one may have spent the budget
            if not self.budget.allows():
                self._skip(job.scope, job.route.id, "budget")
                return
            await self._process(job)
        except Exception:
            log.exception("shadow comparison of %s failed", job.route.id)
        finally:
            queue.task_done()

    def _tell_cpu(self) -> None:
        """Tell the CPU counter what was charged since it was last told."""
        used = self.budget.used
        if used != self._charged:
            self.metrics.shadow_cpu.inc(used - self._charged)
            self._charged = used

    async def _process(self, job: _Job) -> None:
        route = job.route
        if job.owner.truncated:
            self._skip(job.scope, route.id, "response_too_large")
            return
        owner_side = job.owner_side
        outcome = job.candidate or await self._call(
            _other_side(owner_side), shadow_scope(job.scope, "copy"), job.request.body, route
        )
        if outcome.skipped is not None:
            self._skip(job.scope, route.id, outcome.skipped)
            return
        if outcome.capture is None:
            self.metrics.shadow_results.labels(route.id, "error").inc()
            self._report(job.scope, "error")
            self.sink.record_candidate_error(
                route_id=route.id,
                owner_side=owner_side,
                error=outcome.error or "no response",
                owner_ms=job.owner_ms,
                candidate_ms=outcome.ms,
            )
            return
        if outcome.capture.truncated:
            self._skip(job.scope, route.id, "response_too_large")
            return
        rules = compile_rules(route.shadow)
        diffs = compare(job.owner, outcome.capture, rules)
        self.metrics.shadow_results.labels(route.id, "diff" if diffs else "match").inc()
        if self.on_result is not None:
            self.on_result(route, bool(diffs))
        self._report(job.scope, "diff" if diffs else "match")
        self.sink.record_comparison(
            route_id=route.id,
            owner_side=owner_side,
            owner=job.owner,
            candidate=outcome.capture,
            request=job.request,
            diffs=diffs,
            owner_ms=job.owner_ms,
            candidate_ms=outcome.ms,
            redact=route.shadow.redact,
            redact_headers=route.shadow.redact_headers,
        )
        if job.request.method in SAFE_METHODS and random.random() < route.shadow.noise_sample:
            again = await self._call(owner_side, shadow_scope(job.scope, "copy"), job.request.body, route)
            if again.capture is not None and not again.capture.truncated:  # (a skipped one has none)
                self.sink.record_noise(route_id=route.id, diffs=compare(job.owner, again.capture, rules))

    async def _call(
        self, side: Side, scope: Scope, body: bytes, route: Route, *, inline: bool = False
    ) -> Outcome:
        """Run one side on a copy of the request; its failures are results, never raised. A
        write's candidate runs `inline`, before the owner: always here, never in a process."""
        if self.processes is not None and not inline:
            outcome = await self._run_elsewhere(self.processes, side, scope, body, route)
            if outcome.skipped is not None:
                return outcome
        else:
            outcome = await self._run(side, scope, body, route)
        status = outcome.capture.status if outcome.capture is not None else None
        self.metrics.answered(route.id, side.value, "shadow", status, outcome.ms)
        return outcome

    async def _run(self, side: Side, scope: Scope, body: bytes, route: Route) -> Outcome:
        # in this task: its steps are charged by the caller's meter, the worker's or handle's
        rules = route.shadow
        return Outcome(*await run_copy(self._apps[side], scope, body, rules.timeout_ms, rules.max_body_bytes))

    async def _run_elsewhere(
        self, processes: ShadowProcesses, side: Side, scope: Scope, body: bytes, route: Route
    ) -> Outcome:
        rules = route.shadow
        try:
            reply = await processes.run(side, scope, body, rules.timeout_ms, rules.max_body_bytes)
        except NoWorker as exc:
            return Outcome(None, 0.0, skipped=exc.reason)
        if reply.kind == "skipped":
            return Outcome(None, 0.0, skipped=reply.reason)
        return Outcome(reply.capture, reply.ms, reply.reason)

    def _skip(self, scope: Scope, route_id: str, reason: str) -> None:
        self.metrics.shadow_skipped.labels(route_id, reason).inc()
        self.sink.record_skip(route_id=route_id, reason=reason)
        self._report(scope, f"skipped:{reason}")

    def _report(self, scope: Scope, outcome: str) -> None:
        request_id = scope.get(REQUEST_ID_KEY)
        if self.on_outcome is not None and request_id is not None:
            self.on_outcome(request_id, outcome)


def _other(owner: Owner) -> Side:
    return Side.LEGACY if owner is Owner.NEW else Side.NEW


def _other_side(side: Side) -> Side:
    return Side.LEGACY if side is Side.NEW else Side.NEW
