"""The shadow runner's side of the parity store: cheap in-memory recording, batched writes.

`record_*` only touch in-memory buffers under a short lock, so they are safe on the event
loop and on any thread. A background task flushes the buffers every `flush_interval` seconds
on a worker thread, one transaction per batch. Samples are redacted on that thread too, not
on the event loop (parsing a large JSON body there would stall every request): the raw
answers wait in memory only, at most `max_pending_samples` of them, and nothing unredacted
is ever handed to the database.

When the store is unreachable, serving goes on: counters stay merged in memory and are
written by the next flush that succeeds; samples past the memory bound are dropped and
counted in `dropped`; comparisons that would grow the buffers past `max_pending_keys` are
dropped whole (`dropped_comparisons`), so the store never sees half of one. Both are counted
in `gateway_parity_dropped_total{what}` too. One warning is logged per outage, one when it
starts costing results, and one when the store is back, with what was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.compare import signature
from gateway.exchange import Capture, CapturedRequest, Difference, Side
from gateway.metrics import GatewayMetrics
from gateway.parity import latency
from gateway.parity import schema as t
from gateway.parity.redact import Redactor, capture_json, differences_json, request_json, secrets_of
from gateway.parity.store import Batch, ParityStore, Retention, RouteCounts, dumps
from gateway.settings import GatewaySettings

log = logging.getLogger("gateway.parity")
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class _RawSample:
    route_id: str
    signature: str
    created_at: float
    owner_side: Side
    request: CapturedRequest
    owner: Capture
    candidate: Capture
    diffs: tuple[Difference, ...]
    redact: tuple[str, ...]
    redact_headers: tuple[str, ...] = ()


def other_side(side: Side) -> Side:
    return Side.NEW if side is Side.LEGACY else Side.LEGACY


def field_keys(diffs: tuple[Difference, ...]) -> list[tuple[str, str]]:
    """The distinct (path, kind) of a comparison: a field counts once however often it differs."""
    return sorted({(d.path[: t.PATH], str(d.kind)) for d in diffs})


class ParityRecorder:
    def __init__(
        self,
        store: ParityStore,
        *,
        samples_per_signature: int = 5,
        max_samples: int = 10_000,
        retention_days: float = 14.0,
        flush_interval: float = 1.0,
        retention_interval: float = 60.0,
        max_pending_samples: int = 100,
        max_pending_keys: int = 50_000,
        clock: Callable[[], float] = time.time,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.store = store  # replaceable: the next flush writes to whatever store is here
        self.metrics = metrics
        self.samples_per_signature = samples_per_signature
        self.max_samples = max_samples
        self.retention_days = retention_days
        self.flush_interval = flush_interval
        self.retention_interval = retention_interval
        self.max_pending_samples = max_pending_samples
        self.max_pending_keys = max_pending_keys
        self.clock = clock
        self.dropped = 0  # samples not kept for lack of memory (or that could not be redacted)
        self.dropped_comparisons = 0
        self.failed_flushes = 0
        self._lock = threading.Lock()
        self._batch = Batch()
        self._raw: list[_RawSample] = []
        self._sample_counts: dict[tuple[str, str], int] = {}  # in the store + pending
        self._outage = False
        self._dropping = False  # said so in the log, once until the next good flush
        self._dropped_before_outage = (0, 0)
        self._next_retention = 0.0
        self._flushing = asyncio.Lock()
        self._stopping: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: GatewaySettings, metrics: GatewayMetrics | None = None
    ) -> ParityRecorder:
        return cls(
            ParityStore(settings.store_url),
            samples_per_signature=settings.samples_per_signature,
            max_samples=settings.max_samples,
            retention_days=settings.sample_retention_days,
            flush_interval=settings.store_flush_interval,
            metrics=metrics,
        )

    # --- recording: in memory only -----------------------------------------------------

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
    ) -> None:
        sig = signature(diffs) if diffs else ""
        now = self.clock()
        keys = field_keys(diffs) if sig else []
        with self._lock:
            b = self._batch
            if sig and not self._room(
                [(route_id, sig)] if (route_id, sig) not in b.signatures else [],
                [(route_id, p, k) for p, k in keys if (route_id, p, k) not in b.fields],
            ):
                self._drop_comparison()
                return
            counts = self._route(route_id, now)
            counts.compared += 1
            if not sig:
                counts.exact_matches += 1
            else:
                fields, n, _ = b.signatures.get((route_id, sig), (dumps([list(k) for k in keys]), 0, 0.0))
                b.signatures[(route_id, sig)] = (fields, n + 1, now)
                for path, kind in keys:
                    cand, noise = b.fields.get((route_id, path, kind), (0, 0))
                    b.fields[(route_id, path, kind)] = (cand + 1, noise)
            self._latency(route_id, owner_side, owner_ms)
            self._latency(route_id, other_side(owner_side), candidate_ms)
            if sig and self._take_sample(route_id, sig):
                raw = _RawSample(
                    route_id, sig, now, owner_side, request, owner, candidate, diffs, redact, redact_headers
                )
                self._raw.append(raw)

    def record_noise(self, *, route_id: str, diffs: tuple[Difference, ...]) -> None:
        keys = field_keys(diffs)
        now = self.clock()
        with self._lock:
            b = self._batch
            if not self._room([], [(route_id, p, k) for p, k in keys if (route_id, p, k) not in b.fields]):
                self._drop_comparison()
                return
            self._route(route_id, now).noise_runs += 1
            for path, kind in keys:
                cand, noise = b.fields.get((route_id, path, kind), (0, 0))
                b.fields[(route_id, path, kind)] = (cand, noise + 1)

    def record_candidate_error(
        self, *, route_id: str, owner_side: Side, error: str, owner_ms: float, candidate_ms: float | None
    ) -> None:
        now = self.clock()
        with self._lock:
            self._route(route_id, now).candidate_errors += 1
            self._latency(route_id, owner_side, owner_ms)
            if candidate_ms is not None:
                self._latency(route_id, other_side(owner_side), candidate_ms)

    def record_skip(self, *, route_id: str, reason: str) -> None:
        with self._lock:
            key = (route_id, reason[:64])
            self._batch.skips[key] = self._batch.skips.get(key, 0) + 1

    def _route(self, route_id: str, now: float) -> RouteCounts:
        counts = self._batch.routes.setdefault(route_id, RouteCounts())
        counts.last_at = max(counts.last_at, now)
        return counts

    def _latency(self, route_id: str, side: Side, ms: float) -> None:
        key = (route_id, side.value, latency.bucket(ms))
        self._batch.latency[key] = self._batch.latency.get(key, 0) + 1

    def _room(self, *new_keys: list[Any]) -> bool:
        return self._batch.keys + sum(len(k) for k in new_keys) <= self.max_pending_keys

    def _take_sample(self, route_id: str, sig: str) -> bool:
        key = (route_id, sig)
        if self._sample_counts.get(key, 0) >= self.samples_per_signature:
            return False
        if len(self._raw) + len(self._batch.samples) >= self.max_pending_samples:
            self._drop_samples(1)
            return False
        self._sample_counts[key] = self._sample_counts.get(key, 0) + 1
        return True

    def _drop_comparison(self) -> None:
        self.dropped_comparisons += 1
        if self.metrics is not None:
            self.metrics.parity_dropped.labels("comparison").inc()
        self._say_dropping()

    def _drop_samples(self, n: int) -> None:
        self.dropped += n
        if self.metrics is not None:
            self.metrics.parity_dropped.labels("sample").inc(n)
        self._say_dropping()

    def _say_dropping(self) -> None:
        if self._dropping:
            return
        self._dropping = True
        where = _where(self.store)
        bound = f"at most {self.max_pending_samples} samples and {self.max_pending_keys} counters"
        why = f"while {where} cannot be written: {bound}" if self._outage else f"for {where}: {bound}"
        log.warning(
            "parity store: dropping results %s wait in memory; "
            "every result dropped is counted in gateway_parity_dropped_total",
            why,
        )

    @property
    def pending_samples(self) -> int:
        with self._lock:
            return len(self._raw) + len(self._batch.samples)

    @property
    def pending_keys(self) -> int:
        with self._lock:
            return self._batch.keys

    # --- flushing: on a worker thread ------------------------------------------------------

    async def start(self) -> None:
        """Start the flusher; it never waits for the store, which may well be down."""
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(self._stopping), name="parity-flush")

    async def stop(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Flush what is left, for at most `timeout` seconds; then stop."""
        task, self._task = self._task, None
        if task is None or self._stopping is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            log.warning("parity store: the last flush did not finish within %.1f s; data lost", timeout)
            return
        await asyncio.to_thread(self.store.dispose)

    async def load_sample_counts(self) -> bool:
        """Learn how many samples the store holds, so that full signatures take no more."""
        if not self.store.exists():
            return True
        try:
            counts = await asyncio.to_thread(self.store.sample_counts)
        except Exception:  # the store is down: the first flush says so, and it trims extras
            return False
        self._apply_counts(counts)
        return True

    async def _run(self, stopping: asyncio.Event) -> None:
        await self.load_sample_counts()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.flush_interval)
            # read before the flush: a stop asked for while it runs gets one more flush after it
            last = stopping.is_set()
            try:
                await self.flush()
            except Exception:  # a bug must not end the flusher: the next flush tries again
                log.exception("parity store: flush failed")
            if last:
                return

    async def flush(self) -> bool:
        """Write everything recorded so far; False when the store could not take it."""
        async with self._flushing:
            with self._lock:
                batch, raw = self._batch, self._raw
                self._batch, self._raw = Batch(), []
            if not batch and not raw:  # an idle gateway leaves the store alone (and uncreated)
                return True
            retention = None
            if time.monotonic() >= self._next_retention:
                oldest = self.clock() - self.retention_days * DAY
                retention = Retention(self.max_samples, oldest)
            return await asyncio.to_thread(self._write, batch, raw, retention)

    def _write(self, batch: Batch, raw: list[_RawSample], retention: Retention | None) -> bool:
        for sample in raw:
            try:
                batch.samples.append(self._row(sample))
            except Exception:  # never let one odd body cost the counters: drop the sample
                log.exception("parity store: a sample of %s could not be redacted; dropped", sample.route_id)
                self._forget(sample.route_id, sample.signature)
        store = self.store
        try:
            store.write(batch, per_signature=self.samples_per_signature, retention=retention)
            counts = store.sample_counts() if retention is not None else None
        except Exception as exc:
            self._keep(batch, exc)
            return False
        if retention is not None:
            self._next_retention = time.monotonic() + self.retention_interval
        if counts is not None:
            self._apply_counts(counts)
        self._dropping = False
        if self._outage:
            self._outage = False
            samples, comparisons = self._dropped_before_outage
            samples, comparisons = self.dropped - samples, self.dropped_comparisons - comparisons
            lost = (
                f"; {samples} samples and {comparisons} comparisons were dropped during the outage"
                if samples or comparisons
                else ""
            )
            log.warning("parity store: reachable again (%s); buffered results written%s", _where(store), lost)
        return True

    def _keep(self, batch: Batch, exc: Exception) -> None:
        self.failed_flushes += 1
        if not self._outage:
            self._outage = True
            self._dropped_before_outage = (self.dropped, self.dropped_comparisons)
            self._dropping = False  # the next drop is the outage's: say so
            log.warning(
                "parity store: cannot write to %s (%s: %s); results are kept in memory and retried",
                _where(self.store),
                type(exc).__name__,
                str(exc).strip().splitlines()[0] if str(exc).strip() else "",
            )
        with self._lock:
            batch.merge(self._batch)
            self._batch = batch
            room = max(0, self.max_pending_samples - len(self._raw))
            for sample in batch.samples[room:]:
                self._forget_locked(sample["route_id"], sample["signature"])
            if batch.samples[room:]:
                self._drop_samples(len(batch.samples[room:]))
            del batch.samples[room:]

    def _forget(self, route_id: str, sig: str) -> None:
        with self._lock:
            self._drop_samples(1)
            self._forget_locked(route_id, sig)

    def _forget_locked(self, route_id: str, sig: str) -> None:
        key = (route_id, sig)
        self._sample_counts[key] = max(0, self._sample_counts.get(key, 0) - 1)

    def _apply_counts(self, stored: dict[tuple[str, str], int]) -> None:
        with self._lock:
            counts = dict(stored)
            pending = [(s.route_id, s.signature) for s in self._raw]
            pending += [(s["route_id"], s["signature"]) for s in self._batch.samples]
            for key in pending:
                counts[key] = counts.get(key, 0) + 1
            self._sample_counts = counts

    def _row(self, sample: _RawSample) -> dict[str, Any]:
        hidden = sample.redact_headers
        secrets = secrets_of(sample.request, sample.owner, sample.candidate, headers=hidden)
        redactor = Redactor(sample.redact, secrets, headers=hidden)
        return {
            "route_id": sample.route_id,
            "signature": sample.signature,
            "created_at": sample.created_at,
            "owner_side": sample.owner_side.value,
            "request": dumps(request_json(sample.request, redactor)),
            "owner": dumps(capture_json(sample.owner, redactor)),
            "candidate": dumps(capture_json(sample.candidate, redactor)),
            "differences": dumps(differences_json(sample.diffs, redactor)),
        }


def _where(store: ParityStore) -> str:
    return store.where
