"""Parses a reloaded map in a child process at the lowest CPU priority, off the serving core.

A reload parsed on a thread of the gateway still held the GIL: a 10,000-entry map took ~0.6 s
of the one core a worker runs on, and requests waited behind it. Here a child
(`python -m gateway.map_worker`, at SCHED_IDLE or else nice 19, so the scheduler gives the
core to the serving process whenever it has work) does all of `parse_map`: YAML, validation,
every file:line error.
What comes back is small: the problems, or a fingerprint of each route's data and the data of
the routes the gateway has not seen yet. The gateway then keeps the validated entry objects
(and their routes: gateway.table.build_table) of every route whose data did not change, and
validates only the edited ones, which the child has already found valid.

The child also remembers the last map it parsed (it is told the serving map at start), and
for the common edit, a few routes changed in place, it says which positions changed and
hands over the audit entry's diff and snapshot (gateway.map_loader.Delta): the serving
process then touches those routes only, and what it must do with the GIL held on a reload
of 10,000 routes fell from ~45-110 ms (each ~5 ms slice a stall of the serving loop) to
about 5 ms.

A map under CHILD_FROM_BYTES (16 KB, ~100 routes) is parsed in-process: it takes less than
the hand-off, and a child at idle priority on saturated cores would make it wait.

If the child dies, cannot start or answers nonsense, the map is parsed in-process as before,
with a warning; the next reload starts a new child.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from gateway.map_loader import (
    Delta,
    LoadedMap,
    MapError,
    Problem,
    decode,
    no_gc_pauses,
    parse_parts,
    template_of,
)
from gateway.map_schema import Defaults, MigrationMap, RouteEntry
from gateway.paths import PathTemplate
from gateway.rollout.store_changes import Snapshot, diff_snapshots, serving_snapshot, snapshot_json

log = logging.getLogger("gateway.map")

Fingerprint = bytes
SIZE = 16  # bytes of a fingerprint
Known = tuple[RouteEntry, PathTemplate]


def fingerprint(data: Any) -> Fingerprint:
    # repr tells 1 from 1.0, True and '1'; YAML's plain data is all that validation sees, so
    # the same data gives the same entry (a reordered key merely validates it again)
    return hashlib.blake2b(repr(data).encode(), digest_size=SIZE).digest()


def _routes_data(data: dict[str, Any]) -> list[Any]:
    return list(data.get("routes") or ())


class Seen:
    """The child's memory of the last map it parsed: what the next reply is a delta against."""

    __slots__ = ("lines", "prints", "sha256", "snapshot")

    def __init__(
        self, sha256: str, prints: list[Fingerprint], lines: tuple[int | None, ...], snapshot: Snapshot
    ) -> None:
        self.sha256, self.prints, self.lines, self.snapshot = sha256, prints, lines, snapshot


def answer(
    raw: bytes, file: str, known: bytes | None, base: str | None, seen: Seen | None
) -> tuple[tuple[Any, ...], Seen | None]:
    """The child's reply to one map, ("error", problems), ("bug", why) or ("ok", ...), and
    what it remembers next. `base`: the hash of the map the gateway holds, to diff against;
    `known`: the fingerprints whose entries it holds, None for those of `seen` (it holds them)."""
    try:
        loaded, data = parse_parts(decode(raw, file), file)
    except MapError as exc:
        return ("error", exc.problems), seen
    except Exception as exc:  # the gateway parses it again itself, to report the bug as it does
        return ("bug", f"{type(exc).__name__}: {exc}"), seen
    prints = [fingerprint(d) for d in _routes_data(data)]
    held = seen if seen is not None and base == seen.sha256 else None  # the gateway's map is mine
    already = set(_split(known)) if known is not None else set(held.prints if held is not None else ())
    new = {fp: d for fp, d in zip(prints, _routes_data(data), strict=True) if fp not in already}
    fields = {key: data[key] for key in ("version", "defaults") if key in data}
    snapshot = serving_snapshot(loaded)
    delta = None
    lines: tuple[int | None, ...] | None = loaded.lines
    # fingerprints travel as one bytes object: 10,000 small ones were ~2 ms of pickling each
    # way, in one C call the serving loop had to wait out
    blob = b"".join(prints)
    if held is not None:
        positions = None  # routes added, removed or moved: the gateway rebuilds its table
        if len(prints) == len(held.prints) and loaded.lines == held.lines:
            positions = tuple(i for i, (a, b) in enumerate(zip(prints, held.prints, strict=True)) if a != b)
            lines, blob = None, b"".join(prints[i] for i in positions)  # the base's lines; the edited
        delta = (held.sha256, positions, diff_snapshots(held.snapshot, snapshot), snapshot_json(snapshot))
    reply = ("ok", loaded.sha256, lines, blob, new, fields, sorted(data), delta)
    return reply, Seen(loaded.sha256, prints, loaded.lines, snapshot)


def _split(blob: bytes) -> list[Fingerprint]:
    return [blob[i : i + SIZE] for i in range(0, len(blob), SIZE)]


def lower_priority() -> None:
    """SCHED_IDLE where Linux has it: a serving process that wakes up on this core takes it at
    once (at nice 19 it may wait out the child's time slice, ~1 ms); else nice 19."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)


def main() -> int:
    lower_priority()
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies may reach the pipe
    seen: Seen | None = None
    while True:
        try:
            kind, raw, file, known, base = pickle.load(requests)
        except EOFError:  # the gateway closed the pipe, or died
            return 0
        reply, seen = answer(raw, file, known, base, seen)
        if kind == PRIME:  # the map serving now, told so the next reload can be a delta
            reply = (PRIMED, reply[0])
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


PARSE, PRIME, PRIMED = "parse", "prime", "primed"


class WorkerDied(Exception):
    pass


# How long a reload waits for the child. On a saturated core the child at idle priority gets
# almost no CPU, and an edit to the map, say an owner flipped back to legacy in an incident,
# would wait for as long as the load lasts. So every CHILD_DEADLINE_S without an answer, the
# child's CPU time (/proc/<pid>/stat) is read: one that had less than CHILD_MIN_SHARE of a
# core in that time is starved, and the map is parsed here at normal priority, as before the
# child existed, and the child restarted. One that is progressing (at half load it gets the
# idle half of the core) is waited for, up to CHILD_MAX_S in all: parsing here would hold the
# serving loop for the whole parse, ~0.6 s for 10,000 routes. Without /proc: the deadline only.
CHILD_DEADLINE_S = 5.0
CHILD_MIN_SHARE = 0.2
CHILD_MAX_S = 30.0

# A map smaller than this is parsed here, on the checking thread: at ~300 ns a byte it holds
# the GIL for under ~5 ms, one switch interval, less than the hand-off to a child costs when
# the cores are busy. A child at idle priority on a saturated machine gets no CPU at all, so
# an owner flipped in a small map would otherwise wait out the deadline above.
CHILD_FROM_BYTES = 16 * 1024


class MapParser:
    """Loads maps for a MapHolder, in the child when it can; keeps the entries of the last map."""

    def __init__(
        self,
        *,
        child: bool = True,
        deadline: float = CHILD_DEADLINE_S,
        longest: float = CHILD_MAX_S,
        child_from_bytes: int = CHILD_FROM_BYTES,
    ) -> None:
        self.child = child
        self.deadline = deadline  # a starved child is given up after this
        self.longest = longest  # a progressing one after this
        self.child_from_bytes = child_from_bytes
        self._proc: subprocess.Popen[bytes] | None = None
        self._entries: dict[Fingerprint, Known] = {}
        self._last: LoadedMap | None = None  # the map this parser gave last: what a delta patches
        self._prints: list[Fingerprint] = []  # of _last's routes
        self._taught: str | None = None  # the hash of the map the child remembers
        self._primer: tuple[bytes, str] | None = None  # the map loaded here, for a new child
        self._unread = 0  # replies to primes the child owes, read before the next answer
        self._priming: subprocess.Popen[bytes] | None = None  # a child still to be told
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self.child and self._proc is None:
                try:
                    self._proc = self._spawn()
                except OSError as exc:
                    log.warning("cannot start the map parser process (%s); maps are parsed in-process", exc)
                    return
                self._prime()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def load(self, raw: bytes, file: str) -> LoadedMap:
        """Raises MapError for a bad map, as load_bytes does."""
        with self._lock:
            if not self.child or len(raw) < self.child_from_bytes:
                return self._load_here(raw, file)
            try:
                reply = self._ask(raw, file)
                if reply[0] == "error":
                    raise MapError(list(reply[1]))
                if reply[0] == "bug":
                    return self._load_here(raw, file)  # raises it here, with its stack, for the log
                with no_gc_pauses():
                    loaded = self._assemble(file, *reply[1:])
            except WorkerDied as exc:
                log.warning("map parser process failed (%s); parsing %s in-process", exc, file)
                self._stop()
                return self._load_here(raw, file)
            self._last, self._primer, self._taught = loaded, (raw, file), loaded.sha256
            return loaded

    def load_here(self, raw: bytes, file: str) -> LoadedMap:
        with self._lock:
            loaded = self._load_here(raw, file)
            if self._proc is not None:
                self._prime()
            return loaded

    def _load_here(self, raw: bytes, file: str) -> LoadedMap:
        loaded, data = parse_parts(decode(raw, file), file)
        prints = [fingerprint(d) for d in _routes_data(data)]
        self._entries = dict(zip(prints, zip(loaded.map.routes, loaded.templates, strict=True), strict=True))
        self._last, self._primer, self._prints = loaded, (raw, file), prints
        return loaded

    def _assemble(
        self,
        file: str,
        sha256: str,
        lines: tuple[int | None, ...] | None,
        blob: bytes,
        new: dict[Fingerprint, Any],
        fields: dict[str, Any],
        keys: list[str],
        found: tuple[str, tuple[int, ...] | None, list[dict[str, Any]], str] | None,
    ) -> LoadedMap:
        base = self._last
        if found is not None and (base is None or base.sha256 != found[0]):
            raise WorkerDied("a delta against a map this process does not hold")
        positions = found[1] if found is not None else None
        if base is not None and positions is not None and lines is None:
            # a few routes edited in place: the rest are the base's objects, on the same lines
            lines = base.lines
            routes, templates, prints = list(base.map.routes), list(base.templates), list(self._prints)
            for k, i in enumerate(positions):
                fp = prints[i] = blob[k * SIZE : (k + 1) * SIZE]
                known = self._entries.get(fp)
                if known is None:
                    entry = RouteEntry.model_validate(new[fp])  # valid: the child validated it
                    known = self._entries[fp] = (entry, template_of(entry.path))
                routes[i], templates[i] = known
            if len(self._entries) > 2 * len(routes) + 64:  # edits leave entries no route uses
                self._entries = dict(zip(prints, zip(routes, templates, strict=True), strict=True))
        else:
            if lines is None:
                raise WorkerDied("no lines, and no delta to take them from")
            positions = None
            entries: dict[Fingerprint, Known] = {}
            prints = _split(blob)
            for fp in prints:
                known = self._entries.get(fp) or entries.get(fp)
                if known is None:
                    entry = RouteEntry.model_validate(new[fp])  # valid: the child validated it
                    known = (entry, template_of(entry.path))
                entries[fp] = known
            ordered = [entries[fp] for fp in prints]
            routes, templates = [e for e, _ in ordered], [t for _, t in ordered]
            self._entries = entries
        self._prints = prints
        defaults = Defaults.model_validate(fields["defaults"]) if "defaults" in fields else Defaults()
        mmap = MigrationMap.model_construct(
            set(keys), version=fields["version"], defaults=defaults, routes=tuple(routes)
        )
        delta = Delta(found[0], positions, found[2], found[3]) if found is not None else None
        return LoadedMap(mmap, file, sha256, tuple(templates), lines, delta=delta)

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        # the gateway package this process imported, whatever sys.path found it through
        here = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.map_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )

    def _prime(self, *, wait: bool = False) -> None:
        """Tell a new child the map serving now, so that its first reload is a delta too; its
        reply is read before the next answer. The map (~1.4 MB for 10,000 routes) is written
        from a thread unless `wait`: a pipe takes 64 KB until the child, still importing,
        reads, and a gateway starting up must not wait for that (a reload that comes first
        writes it itself)."""
        proc = self._proc
        if self._primer is None or proc is None:
            return
        self._priming = proc
        if wait:
            self._write_prime()
        else:
            threading.Thread(target=self._prime_later, daemon=True).start()

    def _prime_later(self) -> None:
        with self._lock:
            self._write_prime()

    def _write_prime(self) -> None:
        proc, self._priming = self._priming, None
        if proc is None or proc is not self._proc or self._primer is None or self._last is None:
            return  # written already, or this child is gone
        assert proc.stdin is not None
        try:
            pickle.dump((PRIME, *self._primer, b"", None), proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.flush()
        except (OSError, ValueError):  # it died or was closed: the next reload says so
            return
        self._unread += 1
        self._taught = self._last.sha256

    def _ask(self, raw: bytes, file: str) -> tuple[Any, ...]:
        if self._proc is not None and self._proc.poll() is not None:
            log.warning("map parser process had exited (code %s); starting a new one", self._proc.returncode)
            self._stop()
        if self._proc is None:
            try:
                self._proc = self._spawn()
            except OSError as exc:
                raise WorkerDied(f"cannot start: {exc}") from None
            self._prime(wait=True)
        self._write_prime()  # if the thread has not yet
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            base = self._last.sha256 if self._last is not None else None
            # the child knows the entries of the map it remembers: 10,000 fingerprints less to send
            known = None if base is not None and base == self._taught else b"".join(self._entries)
            request = (PARSE, raw, file, known, base)
            pickle.dump(request, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.flush()
            while True:
                self._wait_for(proc)
                reply = _read(proc.stdout)
                if not self._unread:
                    break
                self._unread -= 1
                if not (isinstance(reply, tuple) and reply and reply[0] == PRIMED):
                    raise WorkerDied(f"unexpected reply {type(reply).__name__} to the serving map")
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            code = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(1)  # a child that closed the pipe is exiting: say how
            raise WorkerDied(f"exit code {code}" if code is not None else repr(exc)) from None
        if not isinstance(reply, tuple) or not reply or reply[0] not in ("ok", "error", "bug"):
            raise WorkerDied(f"unexpected reply {type(reply).__name__}")
        if reply[0] == "error" and not all(isinstance(p, Problem) for p in reply[1]):
            raise WorkerDied("unexpected problems")
        return tuple(reply)

    def _wait_for(self, proc: subprocess.Popen[bytes]) -> None:
        """Until the child's reply can be read; kills it and raises WorkerDied when it is
        starved (under CHILD_MIN_SHARE of a core for `deadline`) or slower than `longest`."""
        assert proc.stdout is not None
        started = since = time.monotonic()
        spent = _cpu_seconds(proc.pid)
        while not select.select([proc.stdout], [], [], min(self.deadline, started + self.longest - since))[0]:
            now = time.monotonic()
            if now - started >= self.longest:
                proc.kill()
                raise WorkerDied(f"no answer within {self.longest:g} s")
            used = _cpu_seconds(proc.pid)
            share = (used - spent) / (now - since) if used is not None and spent is not None else 0.0
            if share < CHILD_MIN_SHARE:  # starved or stuck: its answer would come too late to matter
                proc.kill()
                raise WorkerDied(f"no answer within {now - started:.1f} s, on {share:.0%} of a core")
            since, spent = now, used

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        self._unread, self._taught = 0, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()  # the child ends at EOF
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """The CPU time a process has used (Linux's /proc); None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


def _read(stream: IO[bytes]) -> Any:
    return pickle.load(stream)


if __name__ == "__main__":
    raise SystemExit(main())
