"""Parses a reloaded map in a child process at the lowest CPU priority, off the serving core.

A reload parsed on a thread of the gateway still held the GIL: a 10,000-entry map took ~0.6 s
of the one core a worker runs on, and requests waited behind it. Here a child
(`python -m gateway.map_worker`, niced to 19, so the scheduler gives the core to the serving
process whenever it has work) does all of `parse_map`: YAML, validation, every file:line error.
What comes back is small: the problems, or a fingerprint of each route's data and the data of
the routes the gateway has not seen yet. The gateway then keeps the validated entry objects
(and their routes: gateway.table.build_table) of every route whose data did not change, and
validates only the edited ones, which the child has already found valid.

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
from pathlib import Path
from typing import IO, Any

from gateway.map_loader import (
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


def answer(raw: bytes, file: str, known: bytes) -> tuple[Any, ...]:
    """The child's reply to one map: ("error", problems), ("bug", why) or ("ok", ...)."""
    try:
        loaded, data = parse_parts(decode(raw, file), file)
    except MapError as exc:
        return ("error", exc.problems)
    except Exception as exc:  # the gateway parses it again itself, to report the bug as it does
        return ("bug", f"{type(exc).__name__}: {exc}")
    prints = [fingerprint(d) for d in _routes_data(data)]
    seen = set(_split(known))
    new = {fp: d for fp, d in zip(prints, _routes_data(data), strict=True) if fp not in seen}
    fields = {key: data[key] for key in ("version", "defaults") if key in data}
    # fingerprints travel as one bytes object: 10,000 small ones were ~2 ms of pickling each
    # way, in one C call the serving loop had to wait out
    return ("ok", loaded.sha256, loaded.lines, b"".join(prints), new, fields, sorted(data))


def _split(blob: bytes) -> list[Fingerprint]:
    return [blob[i : i + SIZE] for i in range(0, len(blob), SIZE)]


def main() -> int:
    with contextlib.suppress(OSError):
        os.nice(19)
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies may reach the pipe
    while True:
        try:
            raw, file, known = pickle.load(requests)
        except EOFError:  # the gateway closed the pipe, or died
            return 0
        pickle.dump(answer(raw, file, known), replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


class WorkerDied(Exception):
    pass


# How long a reload waits for the niced child. On a saturated core the child gets no CPU at
# all (nice 19 yields to every busy process) and an edit to the map, say an owner flipped back
# to legacy in an incident, would wait for as long as the load lasts; past this, the map is
# parsed here at normal priority, as it was before the child existed, and the child restarted.
CHILD_DEADLINE_S = 5.0


class MapParser:
    """Loads maps for a MapHolder, in the child when it can; keeps the entries of the last map."""

    def __init__(self, *, child: bool = True, deadline: float = CHILD_DEADLINE_S) -> None:
        self.child = child
        self.deadline = deadline
        self._proc: subprocess.Popen[bytes] | None = None
        self._entries: dict[Fingerprint, Known] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self.child and self._proc is None:
                try:
                    self._proc = self._spawn()
                except OSError as exc:
                    log.warning("cannot start the map parser process (%s); maps are parsed in-process", exc)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def load(self, raw: bytes, file: str) -> LoadedMap:
        """Raises MapError for a bad map, as load_bytes does."""
        with self._lock:
            if not self.child:
                return self._load_here(raw, file)
            try:
                reply = self._ask(raw, file)
            except WorkerDied as exc:
                log.warning("map parser process failed (%s); parsing %s in-process", exc, file)
                self._stop()
                return self._load_here(raw, file)
            if reply[0] == "error":
                raise MapError(list(reply[1]))
            if reply[0] == "bug":
                return self._load_here(raw, file)  # raises it here, with its stack, for the log
            with no_gc_pauses():
                return self._assemble(file, *reply[1:])

    def load_here(self, raw: bytes, file: str) -> LoadedMap:
        with self._lock:
            return self._load_here(raw, file)

    def _load_here(self, raw: bytes, file: str) -> LoadedMap:
        loaded, data = parse_parts(decode(raw, file), file)
        prints = [fingerprint(d) for d in _routes_data(data)]
        self._entries = dict(zip(prints, zip(loaded.map.routes, loaded.templates, strict=True), strict=True))
        return loaded

    def _assemble(
        self,
        file: str,
        sha256: str,
        lines: tuple[int | None, ...],
        blob: bytes,
        new: dict[Fingerprint, Any],
        fields: dict[str, Any],
        keys: list[str],
    ) -> LoadedMap:
        entries: dict[Fingerprint, Known] = {}
        prints = _split(blob)
        for fp in prints:
            known = self._entries.get(fp) or entries.get(fp)
            if known is None:
                entry = RouteEntry.model_validate(new[fp])  # valid: the child validated it
                known = (entry, template_of(entry.path))
            entries[fp] = known
        ordered = [entries[fp] for fp in prints]
        defaults = Defaults.model_validate(fields["defaults"]) if "defaults" in fields else Defaults()
        mmap = MigrationMap.model_construct(
            set(keys), version=fields["version"], defaults=defaults, routes=tuple(e for e, _ in ordered)
        )
        self._entries = entries
        return LoadedMap(mmap, file, sha256, tuple(t for _, t in ordered), lines)

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

    def _ask(self, raw: bytes, file: str) -> tuple[Any, ...]:
        if self._proc is not None and self._proc.poll() is not None:
            log.warning("map parser process had exited (code %s); starting a new one", self._proc.returncode)
            self._stop()
        if self._proc is None:
            try:
                self._proc = self._spawn()
            except OSError as exc:
                raise WorkerDied(f"cannot start: {exc}") from None
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            request = (raw, file, b"".join(self._entries))
            pickle.dump(request, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], self.deadline)
            if not ready:  # starved or stuck: its answer would come too late to matter
                proc.kill()
                raise WorkerDied(f"no answer within {self.deadline:g} s")
            reply = _read(proc.stdout)
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

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
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


def _read(stream: IO[bytes]) -> Any:
    return pickle.load(stream)


if __name__ == "__main__":
    raise SystemExit(main())
