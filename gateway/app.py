"""The app factory and the one place where lifespan resources are set up and torn down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from gateway import worker_startup
from gateway.access_log import AccessLog
from gateway.admin import create_admin_app
from gateway.asgi import ASGIApp, Receive, Scope, Send
from gateway.bridge import LegacyBridge, WSGIApp
from gateway.dispatcher import Backends, Dispatcher
from gateway.lifespan import ChildLifespan
from gateway.loading import load_app
from gateway.logs import configure_logging
from gateway.map_loader import freeze_heap
from gateway.map_worker import MapParser
from gateway.metrics import GatewayMetrics
from gateway.native_routes import NativeRoutes
from gateway.parity.recorder import ParityRecorder
from gateway.reloader import MapHolder, MapWatcher
from gateway.remote import RemoteLegacy
from gateway.rollout.runtime import Rollout
from gateway.rollout.state import RolloutStore
from gateway.settings import GatewaySettings
from gateway.shadow import ParitySink, ShadowRunner
from gateway.shadow_processes import ShadowProcesses

log = logging.getLogger("gateway")


class Gateway:
    """Owns the backends and the map watcher; `dispatcher` is the ASGI app to serve."""

    def __init__(
        self,
        settings: GatewaySettings,
        metrics: GatewayMetrics | None = None,
        sink: ParitySink | None = None,
        *,
        legacy_app: WSGIApp | None = None,
        native_app: ASGIApp | None = None,
    ) -> None:
        # legacy_app / native_app: the apps themselves instead of the settings' import strings,
        # for a caller that already holds them (the compatibility harness, an app's own tests)
        self.settings = settings
        self.metrics = metrics or GatewayMetrics()
        # run-time rollout decisions and the audit log of map changes, beside the parity data
        self.rollout_store = RolloutStore(settings.store_url)
        on_change = self.rollout_store.record_map_change  # one audit entry per map change, fleet-wide
        self.parser = MapParser(child=settings.reload_in_child)
        self.holder = MapHolder(settings.map_path, self.metrics, on_change=on_change, parser=self.parser)
        self.holder.load_initial()
        self.recorder = ParityRecorder.from_settings(settings, self.metrics)  # shadow results, in batches
        self.legacy: LegacyBridge | RemoteLegacy
        # shadow calls to legacy get their own threads, so they never take one from a client
        self.legacy_shadow: LegacyBridge | RemoteLegacy
        if settings.legacy_url:
            self.legacy = RemoteLegacy(
                settings.legacy_url,
                timeout=settings.remote_timeout,
                max_connections=settings.remote_max_connections,
            )
            self.legacy_shadow = self.legacy
        else:
            wsgi_app = legacy_app if legacy_app is not None else load_app(settings.legacy_app)
            self.legacy = LegacyBridge(
                wsgi_app, threads=settings.legacy_threads, acquire_timeout=settings.legacy_queue_timeout
            )
            self.legacy_shadow = LegacyBridge(
                wsgi_app, threads=settings.shadow_legacy_threads, acquire_timeout=1.0, abandonable=True
            )
        for pool, bridge in (("primary", self.legacy), ("shadow", self.legacy_shadow)):
            if isinstance(bridge, LegacyBridge):  # set as they change: a scrape may read another worker
                self.metrics.legacy_threads.labels(pool).set(bridge.threads)
                bridge.on_busy = self.metrics.legacy_busy.labels(pool).inc
        if isinstance(self.legacy, LegacyBridge):  # only clients get the 503 the metric counts
            self.legacy.on_rejected = self.metrics.legacy_rejected.inc
        self.native: ASGIApp = native_app if native_app is not None else load_app(settings.native_app)
        self.shadow_processes: ShadowProcesses | None = None
        if settings.shadow_processes:
            if legacy_app is not None or native_app is not None:
                raise ValueError(
                    f"GATEWAY_SHADOW_PROCESSES={settings.shadow_processes}: shadow processes load the apps "
                    "by their import strings (GATEWAY_LEGACY_APP, GATEWAY_NATIVE_APP), but this gateway was "
                    "handed the app objects; set GATEWAY_SHADOW_PROCESSES=0 to run shadows in-process"
                )
            self.shadow_processes = ShadowProcesses(
                settings.shadow_processes,
                native_app=settings.native_app,
                legacy_app=settings.legacy_app,
                legacy_url=settings.legacy_url,
                remote_timeout=settings.remote_timeout,
                remote_max_connections=settings.remote_max_connections,
                legacy_threads=settings.shadow_legacy_threads,
            )
        # results go to the parity store; tests may hand in another sink
        self.shadow = ShadowRunner(
            native=self.native,
            legacy=self.legacy_shadow,
            sink=sink or self.recorder,
            metrics=self.metrics,
            concurrency=settings.shadow_concurrency,
            queue_size=settings.shadow_queue_size,
            cpu_budget=settings.shadow_cpu_budget,
            cpu_ceiling=settings.shadow_cpu_ceiling,
            cpu_floor=settings.shadow_cpu_floor,
            cpu_burst=settings.shadow_cpu_burst_ms / 1000,
            processes=self.shadow_processes,
        )
        token = settings.override_token
        self.rollout = Rollout(
            store=self.rollout_store,
            holder=self.holder,
            metrics=self.metrics,
            poll_interval=settings.state_poll_interval,
            override_token=token.get_secret_value() if token is not None else None,
        )
        self.shadow.on_result = self.rollout.observe_shadow  # guards watch mismatch rates too
        # one JSON line per request; a shadowed request's line waits for the comparison's outcome
        self.access_log = AccessLog() if settings.access_log else None
        if self.access_log is not None:
            self.shadow.on_outcome = self.access_log.resolve
        self._publisher: asyncio.Task[None] | None = None
        # a server process (create_app) moves what start-up built into the collector's
        # permanent generation once it is up: see _lifespan
        self.freeze_gc = False
        self._native_lifespan = ChildLifespan(self.native, "native")
        self.watcher = MapWatcher(self.holder, settings.reload_poll_interval)
        admin = create_admin_app(
            holder=self.holder,
            metrics=self.metrics,
            legacy=self.legacy,
            recorder=self.recorder,
            rollout=self.rollout_store,
            admin_tokens=settings.named_admin_tokens(),
            metrics_token=settings.metrics_token,
        )
        self.dispatcher = Dispatcher(
            holder=self.holder,
            backends=Backends(legacy=self.legacy, native=self.native, admin=admin),
            lifespan=self._lifespan,
            request_id_header=settings.request_id_header,
            served_by_header=settings.served_by_header,
            shadow=self.shadow,
            rollout=self.rollout,
            metrics=self.metrics,  # every answer is counted, and shown to its route's guard
            access_log=self.access_log,
            max_body_bytes=settings.max_body_bytes,
            native_routes=NativeRoutes.install(self.native) if settings.native_route_shortcut else None,
        )

    async def startup(self, state: dict[str, Any] | None = None) -> None:
        await self.recorder.start()
        await self._native_lifespan.startup(state)
        await self.shadow.start()
        if self.shadow_processes is not None:  # ready before the first request, or skipping until then
            await self.shadow_processes.start()
        await self.rollout.start()
        self._publisher = asyncio.create_task(self.metrics.publish_every(1.0), name="metrics-publish")
        self.parser.start()  # here, not in __init__: a Gateway never started leaves no process behind
        self.watcher.start()
        if self.access_log is not None:
            await self.access_log.start()
        loaded = self.holder.loaded
        assert loaded is not None
        log.info(
            "gateway ready: map %s (%s, %d routes), legacy %s",
            self.holder.path,
            loaded.short_hash,
            len(loaded.map.routes),
            self.settings.legacy_url or self.settings.legacy_app,
        )

    async def shutdown(self) -> None:
        timeout = self.settings.shutdown_timeout
        await self.watcher.stop()
        await asyncio.to_thread(self.parser.close)
        await self.rollout.stop()
        await self.shadow.stop(timeout / 2)
        if self.shadow_processes is not None:
            await self.shadow_processes.close()
        if isinstance(self.legacy, LegacyBridge):
            await self.legacy.aclose(timeout)
        else:
            await self.legacy.aclose()
        if isinstance(self.legacy_shadow, LegacyBridge):
            await self.legacy_shadow.aclose(0)
        await self._native_lifespan.shutdown(timeout)
        if self.access_log is not None:
            await self.access_log.stop()  # lines still waiting for a shadow outcome: pending
        await self.recorder.stop()  # last: whatever the shadow workers recorded is flushed
        self.rollout_store.dispose()
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        self.metrics.publish()  # the last counts, before this worker's live gauges go
        self.metrics.worker_exit()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup(scope.get("state"))
                except Exception as exc:
                    log.exception("gateway start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self.freeze_gc:
                    # Both apps, their modules and the routing table live as long as the process,
                    # yet every full collection would walk them again: in a gateway (two apps in
                    # one heap) that was ~90k instructions per request on a native DB read, 3x what
                    # the gateway's own request path costs. Frozen, only what requests build is
                    # scanned. Cyclic garbage among frozen objects is never collected: start-up
                    # objects are collected first, and the ones the gateway drops later (a
                    # replaced routing table) hold no cycles and go by reference counting.
                    # A 10,000-route map is a million such objects: a full collection walked
                    # them in 0.7 s with the GIL held; a reload reuses most of them
                    # (gateway.map_worker). Not in-process (tests, the compatibility harness
                    # inside an app's own suite): that heap is not the gateway's to freeze.
                    freeze_heap()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await asyncio.wait_for(self.shutdown(), self.settings.shutdown_timeout + 5)
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: GatewaySettings | None = None) -> Dispatcher:
    """App factory: `uvicorn --factory gateway.app:create_app` reads GATEWAY_* settings."""
    settings = settings or GatewaySettings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        gateway = Gateway(settings)
    except Exception as exc:
        worker_startup.failed(exc)  # a worker of `gateway serve --workers N`: stop them all
        raise
    gateway.freeze_gc = True  # this process is a server: see Gateway._lifespan
    return gateway.dispatcher
