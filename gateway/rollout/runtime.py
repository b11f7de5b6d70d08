"""The run-time half of cutover: who serves each request, and guards that roll routes back.

The map is the desired state; the store holds what was decided at run time (a guard's
rollback, a manual abort or promotion). Every worker polls the store each
`poll_interval`, so all workers and instances converge within a few seconds. A guard
breach seen by any worker is written to the store (once: the store dedupes) and applied
locally at once; if the store cannot take the write, the rollback holds on this worker and
is written at each poll until it is on record, so that a poll of the store does not undo it.

A canary step changes who is served by every worker, and workers learn of it up to a poll
apart: applied as soon as each worker read it, a user whose requests alternate between two
workers would go new, legacy, new for that long. So a step names the instant it takes effect
(`switch_at`, a few polls ahead, by when every worker has read it), and until then every
worker serves the percentage before it (`from_percent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any

from gateway.asgi import Scope
from gateway.map_schema import Owner
from gateway.metrics import GatewayMetrics
from gateway.reloader import MapHolder
from gateway.rollout.canary import serves_new
from gateway.rollout.guard import GuardVerdict, WindowStats, evaluate
from gateway.rollout.state import RolloutStore, RouteState, RuntimeState
from gateway.rollout_schema import CanarySettings
from gateway.table import Route

log = logging.getLogger("gateway.rollout")

GUARD_ACTOR = "guard"
RAMP_ACTOR = "ramp"
_LEGACY_STATES = (RuntimeState.ROLLED_BACK, RuntimeState.ABORTED)


class Rollout:
    def __init__(
        self,
        *,
        store: RolloutStore,
        holder: MapHolder,
        metrics: GatewayMetrics,
        poll_interval: float = 1.0,
        override_token: str | None = None,
    ) -> None:
        self.store = store
        self.holder = holder
        self.metrics = metrics
        self.poll_interval = poll_interval
        self._override_token = override_token.encode() if override_token else None
        self.states: dict[str, RouteState] = {}
        self.stats: dict[str, WindowStats] = {}
        self._task: asyncio.Task[None] | None = None
        self._store_down = False
        # rollbacks decided here that the store has not taken yet: they hold over every poll
        self._unrecorded: dict[str, RouteState] = {}
        self.clock = time.time  # wall clock of the store's timestamps (a test may move it)
        # how far ahead a ramp step takes effect: every worker polls each poll_interval, and
        # one poll may be slow, so three of them pass before any worker switches
        self.switch_delay = 3 * poll_interval

    # -- per request -------------------------------------------------------------------------

    def override(self, backend: bytes | None, token: bytes | None) -> Owner | None:
        """The side forced by `X-Gateway-Backend`, honoured only with a valid `X-Gateway-Token`."""
        if backend is None:
            return None
        valid = (
            self._override_token is not None
            and token is not None
            and hmac.compare_digest(token, self._override_token)
        )
        side = {b"new": Owner.NEW, b"legacy": Owner.LEGACY}.get(backend.strip().lower())
        if not valid or side is None:
            self.metrics.overrides.labels("ignored").inc()
            return None
        self.metrics.overrides.labels("applied").inc()
        return side

    def side_for(self, route: Route, scope: Scope, override: Owner | None) -> Owner:
        if override is not None:
            return override
        state = self.states.get(route.id)
        canary = route.canary
        if state is not None:
            kind, figures = state.state, state.figures
            percent = figures.get("percent")
            switch_at = figures.get("switch_at")
            if switch_at is not None and state.actor == RAMP_ACTOR and self.clock() < switch_at:
                # a step that every worker takes at the same instant: until then, the one before
                kind, percent = RuntimeState.RAMPING, figures.get("from_percent")
            if kind is RuntimeState.RAMPING:
                if canary is not None and route.owner is Owner.LEGACY:
                    canary = _at_percent(canary, percent)
            else:
                return Owner.LEGACY if kind in _LEGACY_STATES else Owner.NEW
        if canary is not None and route.owner is Owner.LEGACY:
            return Owner.NEW if serves_new(route.id, canary, scope) else Owner.LEGACY
        return route.owner

    def observe(self, route: Route, side: Owner, status: int | None, latency_ms: float) -> None:
        if route.guard is None:
            return
        stats = self.stats.get(route.id)
        if stats is None or stats.window_s != route.guard.window_s:
            stats = self.stats[route.id] = WindowStats(route.guard.window_s)
        stats.observe(side.value, status, latency_ms, time.monotonic())

    def observe_shadow(self, route: Route, mismatch: bool) -> None:
        if route.guard is None:
            return
        stats = self.stats.get(route.id)
        if stats is None:
            stats = self.stats[route.id] = WindowStats(route.guard.window_s)
        stats.observe_shadow(mismatch, time.monotonic())

    # -- background --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="rollout")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for route_id in self._unrecorded:
            log.error("the rollback of %s was never recorded: the store did not take it", route_id)

    async def refresh(self) -> None:
        try:
            states = await asyncio.to_thread(self.store.states)
        except Exception as exc:  # the store is down: keep the last known states
            if not self._store_down:
                log.warning("cannot read rollout state (%s); keeping the last known", exc)
            self._store_down = True
            return
        if self._store_down:
            log.info("rollout state readable again")
        self._store_down = False
        for route_id in list(self._unrecorded):
            stored = states.get(route_id)
            if stored is not None and stored.state is not RuntimeState.RAMPING:
                del self._unrecorded[route_id]  # a decision on record stands: this one, or another's
        if self._unrecorded:
            states = {**states, **self._unrecorded}
        for route_id in self.states.keys() - states.keys():
            # retried: judge the route on what happens from now on, not on the failures before
            self.stats.pop(route_id, None)
        self.states = states

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            await self.refresh()
            await self.record_unrecorded()
            try:
                await self.check_guards()
            except Exception:
                log.exception("guard check failed")

    async def record_unrecorded(self) -> None:
        """Write the rollbacks the store could not take when they were decided."""
        for route_id, state in list(self._unrecorded.items()):
            try:
                await self._record_rollback(route_id, state.reason, state.figures, state.map_sha256)
            except Exception:
                return  # still refused: the next poll tries again, and the rollback holds here
            self._unrecorded.pop(route_id, None)
            log.info("the rollback of %s is on record now", route_id)

    async def check_guards(self) -> None:
        table = self.holder.table
        if table is None:
            return
        now = time.monotonic()
        for route in table.routes:
            state = self.states.get(route.id)
            if route.guard is None or (state is not None and state.state is not RuntimeState.RAMPING):
                continue  # unguarded, or decided (rolled back, aborted, promoted) until a retry
            stats = self.stats.get(route.id)
            verdict = evaluate(stats, route.guard, now) if stats is not None else None
            if (
                verdict is not None
                and verdict.decision == "breach"
                and (_sends_new(route) or state is not None)
            ):
                await self.roll_back(route, "; ".join(verdict.reasons), dict(verdict.figures))
            elif route.canary is not None and route.canary.steps and route.owner is Owner.LEGACY:
                await self._ramp(route, state, verdict)

    async def _ramp(self, route: Route, state: RouteState | None, verdict: GuardVerdict | None) -> None:
        """Take the next canary step once its pause is over and the guard says ok (after
        Flagger: "inconclusive" holds, it never promotes); after the last step, promote."""
        canary = route.canary
        assert canary is not None
        sha = self.holder.loaded.sha256 if self.holder.loaded else None
        if state is None:
            figures: dict[str, object] = {"percent": canary.percent, "step": 0}
            await asyncio.to_thread(
                self.store.ramp,
                route.id,
                since=None,
                to=RuntimeState.RAMPING,
                reason="ramp started",
                figures=figures,
                actor=RAMP_ACTOR,
                map_sha256=sha,
            )
        else:
            now = self.clock()
            began = state.figures.get("switch_at", state.at)  # the pause counts from the switch
            if verdict is None or verdict.decision != "ok" or now - began < canary.step_pause_s:
                return
            current = state.figures.get("percent", canary.percent)
            later = [p for p in canary.steps if p > current]
            ok = f"guard ok at {current} % for {canary.step_pause_s} s"
            switch = {"from_percent": current, "switch_at": now + self.switch_delay}
            if later:
                figures = {
                    **verdict.figures,
                    "percent": later[0],
                    "step": canary.steps.index(later[0]) + 1,
                    **switch,
                }
                to = RuntimeState.RAMPING
            else:
                figures, to = {**verdict.figures, **switch}, RuntimeState.PROMOTED
                ok += ", the last step"
            await asyncio.to_thread(
                self.store.ramp,
                route.id,
                since=state.at,
                to=to,
                reason=ok,
                figures=figures,
                actor=RAMP_ACTOR,
                map_sha256=sha,
            )
        await self.refresh()

    async def roll_back(self, route: Route, reason: str, figures: dict[str, float | int | None]) -> None:
        sha = self.holder.loaded.sha256 if self.holder.loaded else None
        # applied here at once, then made everyone's through the store
        state = RouteState(route.id, RuntimeState.ROLLED_BACK, reason, figures, GUARD_ACTOR, time.time(), sha)
        self.states = {**self.states, route.id: state}
        self.metrics.rollbacks.labels(route.id).inc()
        log.warning("route %s rolled back to legacy: %s", route.id, reason)
        try:
            await self._record_rollback(route.id, reason, figures, sha)
        except Exception as exc:
            self._unrecorded[route.id] = state
            log.error(
                "could not record the rollback of %s (%s); it holds on this worker, and is "
                "written when the store takes it",
                route.id,
                exc,
            )

    async def _record_rollback(
        self, route_id: str, reason: str, figures: Mapping[str, Any], sha: str | None
    ) -> None:
        await asyncio.to_thread(
            self.store.set_state,
            route_id,
            RuntimeState.ROLLED_BACK,
            reason=reason,
            figures=figures,
            actor=GUARD_ACTOR,
            map_sha256=sha,
        )


@functools.lru_cache(maxsize=256)
def _at_percent(canary: CanarySettings, percent: object) -> CanarySettings:
    """The route's canary at the percentage a ramp has reached."""
    if not isinstance(percent, int) or percent == canary.percent:
        return canary
    return canary.model_copy(update={"percent": percent})


def _sends_new(route: Route) -> bool:
    return route.owner is Owner.NEW or (route.canary is not None and route.canary.percent > 0)
