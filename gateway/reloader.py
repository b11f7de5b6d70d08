"""Holds the routing table now serving and replaces it when migration_map.yaml changes.

The directory is watched, not the file: editors save by writing a new file and renaming it,
and Kubernetes swaps a `..data` symlink. Every event (and a slow poll, for filesystems
without notifications) triggers a check that reads the file, skips it when its hash is
unchanged, and parses it on a worker thread. Only a valid map replaces the table; an
invalid one is logged at ERROR with file:line, counted, and the last good table serves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import operator
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from gateway.map_loader import LoadedMap, MapError, load_bytes, load_map, no_gc_pauses, read_map
from gateway.map_schema import Owner
from gateway.map_worker import MapParser
from gateway.metrics import GatewayMetrics
from gateway.table import RoutingTable, build_table

log = logging.getLogger("gateway.map")
_OWNER = operator.attrgetter("owner")

# told (old map or None on the first load, new map) after every swap, on the loading thread
MapChange = Callable[[LoadedMap | None, LoadedMap], None]


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    at: float
    sha256: str | None
    error: str | None = None


class MapHolder:
    def __init__(
        self,
        path: Path,
        metrics: GatewayMetrics,
        on_change: MapChange | None = None,
        parser: MapParser | None = None,
    ) -> None:
        self.path = path
        self.metrics = metrics
        self.on_change = on_change
        self.parser = parser  # None: every map is parsed here, on the checking thread
        self.loaded: LoadedMap | None = None
        self.table: RoutingTable | None = None
        self.last: ReloadResult | None = None
        self._seen_sha: str | None = None
        self.checks = 0  # how often the file was looked at: shows the watcher is alive

    def load_initial(self) -> LoadedMap:
        """First load: an invalid map here stops start-up, since nothing good is serving yet."""
        if self.parser is None:
            loaded = load_map(self.path)
        else:  # in-process too (nothing serves yet), but it keeps the entries for the next reload
            loaded = self.parser.load_here(read_map(self.path), str(self.path))
        self._install(loaded)
        return loaded

    def _load(self, raw: bytes) -> LoadedMap:
        if self.parser is None:
            return load_bytes(raw, str(self.path))  # the bytes hashed, not a second read
        return self.parser.load(raw, str(self.path))

    def _install(self, loaded: LoadedMap) -> None:
        serving = (self.loaded, self.table) if self.loaded is not None and self.table is not None else None
        with no_gc_pauses():  # a full collection over a 10,000-route heap stalls requests ~0.2 s
            table = build_table(loaded, serving)
        previous = self.loaded
        self.loaded, self.table = loaded, table  # one reference swap; requests keep theirs
        self._seen_sha = loaded.sha256
        self.last = ReloadResult(True, time.time(), loaded.sha256)
        self.metrics.map_reloads.labels("ok").inc()
        self.metrics.serving_map(loaded.sha256, len(loaded.map.routes))
        new = list(map(_OWNER, table.routes)).count(Owner.NEW)  # in C: ~0.3 ms for 10,000 routes
        self.metrics.routes.labels("legacy").set(len(table.routes) - new)
        self.metrics.routes.labels("new").set(new)
        if self.on_change is not None:
            try:
                with no_gc_pauses():  # the audit entry's objects: no young collection walks them
                    self.on_change(previous, loaded)
            except Exception as exc:  # e.g. the store is down: the new map serves all the same
                reason = (str(exc).strip().splitlines() or [""])[0]
                log.error(
                    "map %s is serving, but its change was not recorded: %s: %s",
                    loaded.short_hash,
                    type(exc).__name__,
                    reason,
                )

    def check(self) -> ReloadResult | None:
        """Reload if the file's content changed; returns the result, or None when unchanged."""
        self.checks += 1
        try:
            raw = read_map(self.path)
        except MapError as exc:  # gone, a directory, unreadable, too large: refused unread
            sha = f"unreadable:{exc}"
            if sha == self._seen_sha:
                return None
            self._seen_sha = sha
            return self._fail(f"{exc}; keeping the last good map")
        sha = hashlib.sha256(raw).hexdigest()
        if sha == self._seen_sha:
            return None
        self._seen_sha = sha
        try:
            loaded = self._load(raw)
        except MapError as exc:
            return self._fail(str(exc))
        except Exception as exc:  # a loader bug must not end the watcher: this map is refused, no more
            log.exception("map %s: unexpected error while loading it", self.path)
            why = f"internal error while loading the map: {type(exc).__name__}: {exc}"
            return self._fail(f"{self.path}: {why}")
        previous = self.loaded.short_hash if self.loaded else "none"
        self._install(loaded)
        log.info(
            "map reloaded from %s: %s -> %s (%d routes)",
            self.path,
            previous,
            loaded.short_hash,
            len(loaded.map.routes),
        )
        assert self.last is not None
        return self.last

    def _fail(self, message: str) -> ReloadResult:
        log.error(
            "map reload rejected, still serving %s: %s",
            self.loaded.short_hash if self.loaded else "nothing",
            message,
        )
        self.metrics.map_reloads.labels("error").inc()
        self.last = ReloadResult(False, time.time(), None, message)
        return self.last


# A file still being written in place (`cat > map.yaml`, a tool that writes in pieces) can
# parse, cut short, as a valid map without its last routes, which would then serve until the
# next event. So a file is read once it has not been modified for SETTLE_S (a rename of a
# finished file, as editors and Kubernetes do, is already that old or nearly); one written
# to without pause is read after SETTLE_S * SETTLE_TRIES whatever its state.
SETTLE_S = 0.2
SETTLE_TRIES = 20


class MapWatcher:
    def __init__(self, holder: MapHolder, poll_interval: float) -> None:
        self.holder = holder
        self.poll_interval = poll_interval
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="map-watcher")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        # absolute(), not resolve(): a Kubernetes map is a symlink into a ..data dir that gets swapped
        directory = self.holder.path.absolute().parent
        while not self._stop.is_set():
            try:
                async for _ in watchfiles.awatch(
                    directory,
                    debounce=50,
                    step=25,
                    stop_event=self._stop,
                    rust_timeout=int(self.poll_interval * 1000),
                    yield_on_timeout=True,
                    recursive=False,
                    watch_filter=None,  # editors and Kubernetes use dot-files; any event counts
                ):
                    await self._check()
            except (OSError, RuntimeError) as exc:
                # the directory itself went away or cannot be watched: keep polling the file
                log.warning("cannot watch %s (%s); polling every %g s", directory, exc, self.poll_interval)
                await self._check()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_interval)

    async def _check(self) -> None:
        for _ in range(SETTLE_TRIES):
            try:
                age = time.time() - os.stat(self.holder.path).st_mtime
            except OSError:
                break  # gone or unreadable: check() says so
            if age >= SETTLE_S:
                break
            await asyncio.sleep(SETTLE_S - max(age, 0.0))
        await asyncio.to_thread(self.holder.check)
