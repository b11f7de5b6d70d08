"""Reloads parsed in the niced child process (gateway.map_worker), reusing unchanged entries."""

import asyncio
import logging
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.map_loader import MapError, parse_map
from gateway.map_worker import MapParser
from gateway.metrics import GatewayMetrics
from gateway.reloader import MapHolder
from gateway.settings import GatewaySettings
from gateway.table import build_table


def a_map(entries: int, new: set[int] = frozenset(), extra: str = "") -> str:  # type: ignore[assignment]
    lines = ["version: 1", "defaults:", "  owner: legacy", "routes:"]
    for i in range(entries):
        path = f"/api/r{i}/items" if i % 3 == 0 else f"/api/r{i}/<int:item_id>"
        lines.append(f"  - id: r{i}.get")
        lines.append(f"    path: '{path}'")
        lines.append("    methods: [GET]")
        lines.append(f"    owner: {'new' if i in new else 'legacy'}")
        if i % 4 == 1:
            lines.append("    shadow: {sample: 0.5, ignore: [body.at]}")
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def parser() -> Iterator[MapParser]:
    p = MapParser(child_from_bytes=0)  # these maps are small: use the child all the same
    p.start()
    try:
        yield p
    finally:
        p.close()


def holder_for(path: Path, parser: MapParser) -> MapHolder:
    holder = MapHolder(path, GatewayMetrics(), parser=parser)
    holder.load_initial()
    return holder


def same_as_a_fresh_load(holder: MapHolder, text: str, path: Path) -> None:
    assert holder.loaded is not None and holder.table is not None
    fresh = parse_map(text, str(path))
    assert holder.loaded.map == fresh.map
    assert holder.loaded.templates == fresh.templates and holder.loaded.lines == fresh.lines
    assert holder.loaded.sha256 == fresh.sha256
    table = build_table(fresh)
    assert holder.table.routes == table.routes
    rng = random.Random(7)
    for _ in range(300):
        i = rng.randrange(60)
        path_ = f"/api/r{i}/" + rng.choice(["items", "5", "x"])
        for method in ("GET", "HEAD", "POST"):
            assert holder.table.lookup(method, path_) == table.lookup(method, path_)



def reloaded(holder: MapHolder, path: Path, text: str, caplog: pytest.LogCaptureFixture) -> str:
    """`text` written and reloaded, successfully; what was logged at WARNING and above."""
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="gateway.map"):
        result = holder.check()
    assert result is not None and result.ok
    return caplog.text


def test_a_reload_serves_the_edited_owner_and_reuses_the_rest(tmp_path: Path, parser: MapParser) -> None:
    path = tmp_path / "migration_map.yaml"
    text = a_map(60)
    path.write_text(text)
    holder = holder_for(path, parser)
    before = holder.loaded
    assert before is not None
    for edit in ({5}, {5, 10}, {10}, {10, 30, 31}):
        text = a_map(60, edit)
        path.write_text(text)
        result = holder.check()
        assert result is not None and result.ok
        same_as_a_fresh_load(holder, text, path)
        assert holder.table is not None
        assert holder.table.lookup("GET", "/api/r10/1").owner.value == ("new" if 10 in edit else "legacy")
    assert holder.loaded is not None
    # the entries whose text did not change are the objects validated at the start
    assert holder.loaded.map.routes[0] is before.map.routes[0]
    assert holder.loaded.map.routes[10] is not before.map.routes[10]
    # an entry inserted at the top moves every line: the entries are kept, the routes are new
    text = a_map(60).replace("routes:\n", "routes:\n  - {id: top, path: /top, methods: [GET]}\n")
    path.write_text(text)
    assert (result := holder.check()) is not None and result.ok
    same_as_a_fresh_load(holder, text, path)


def test_a_bad_edit_is_rejected_with_file_and_line(
    tmp_path: Path, parser: MapParser, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "migration_map.yaml"
    path.write_text(a_map(20))
    holder = holder_for(path, parser)
    serving = holder.table
    bad = a_map(20).replace("    owner: legacy\n", "    owner: nobody\n", 3)
    path.write_text(bad)
    with caplog.at_level(logging.ERROR, logger="gateway.map"):
        result = holder.check()
    assert result is not None and not result.ok
    expected = str(error_of(bad, str(path)))
    assert result.error == expected and f"{path}:" in expected
    assert "routes[2].owner" in expected
    assert holder.table is serving  # the last good map serves on
    assert expected in caplog.text
    # a duplicate id is found across entries, the ones reused included
    dup = a_map(20, extra="  - {id: r3.get, path: /other, methods: [GET]}\n")
    path.write_text(dup)
    result = holder.check()
    assert result is not None and not result.ok
    assert result.error == str(error_of(dup, str(path))) and "duplicate route id 'r3.get'" in result.error


def error_of(text: str, file: str) -> MapError:
    with pytest.raises(MapError) as err:
        parse_map(text, file)
    return err.value


def test_a_child_dead_while_idle_is_replaced(
    tmp_path: Path, parser: MapParser, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "migration_map.yaml"
    path.write_text(a_map(10))
    holder = holder_for(path, parser)
    first = parser._proc
    assert first is not None
    first.kill()
    first.wait()
    text = a_map(10, {4})
    logged = reloaded(holder, path, text, caplog)
    assert "map parser process had exited (code -9); starting a new one" in logged
    assert parser._proc is not None and parser._proc is not first and parser._proc.poll() is None
    same_as_a_fresh_load(holder, text, path)


def test_a_child_that_crashes_while_parsing_falls_back_to_parsing_here(
    tmp_path: Path, parser: MapParser, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "migration_map.yaml"
    path.write_text(a_map(10))
    holder = holder_for(path, parser)
    real_spawn = parser._spawn
    crashing = [sys.executable, "-c", "import sys; sys.stdin.buffer.read(8); sys.exit(3)"]
    monkeypatch.setattr(
        parser, "_spawn", lambda: subprocess.Popen(crashing, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    )
    parser.close()  # the next reload starts the crashing one
    text = a_map(10, {4})
    logged = reloaded(holder, path, text, caplog)
    assert f"map parser process failed (exit code 3); parsing {path} in-process" in logged
    assert parser._proc is None  # the dead one is gone; the next reload starts another
    same_as_a_fresh_load(holder, text, path)
    monkeypatch.setattr(parser, "_spawn", real_spawn)
    text = a_map(10, {4, 6})
    path.write_text(text)
    assert (result := holder.check()) is not None and result.ok
    assert parser._proc is not None and parser._proc.poll() is None
    same_as_a_fresh_load(holder, text, path)


def test_a_child_that_does_not_answer_in_time_is_replaced_and_the_map_parsed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # a niced child on a saturated core gets no CPU: the reload must not wait for the load to end
    parser = MapParser(deadline=0.5, child_from_bytes=0)
    path = tmp_path / "migration_map.yaml"
    path.write_text(a_map(10))
    holder = holder_for(path, parser)
    silent = [sys.executable, "-c", "import time; time.sleep(60)"]
    started: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        started.append(subprocess.Popen(silent, stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        return started[-1]

    monkeypatch.setattr(parser, "_spawn", spawn)
    text = a_map(10, {3})
    began = time.monotonic()
    logged = reloaded(holder, path, text, caplog)
    assert time.monotonic() - began < 5
    # its share is its start-up's: a tick or two of 10 ms
    assert re.search(rf"map parser process failed \(no answer within 0\.5 s, on \d+% of a core\); parsing {re.escape(str(path))} in-process", logged)
    assert started[0].wait(5) != 0 and parser._proc is None  # killed, and the next reload starts another
    same_as_a_fresh_load(holder, text, path)
    parser.close()


def test_a_small_map_is_parsed_here_and_never_waits_for_a_starved_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # regression: under saturation the idle-priority child got no CPU and an owner flipped in a
    # two-route map waited out the 5 s deadline (tests/reliability/test_flips_under_load.py)
    parser = MapParser()
    path = tmp_path / "migration_map.yaml"
    path.write_text(a_map(10))
    holder = holder_for(path, parser)
    asked: list[bytes] = []
    monkeypatch.setattr(parser, "_ask", lambda raw, file: asked.append(raw) or ("bug", "must not be asked"))
    text = a_map(10, {3})
    assert len(text.encode()) < parser.child_from_bytes
    began = time.monotonic()
    assert reloaded(holder, path, text, caplog) == ""
    assert time.monotonic() - began < 2 and asked == []
    same_as_a_fresh_load(holder, text, path)
    big = a_map(200, {3})  # ~20 KB: this one goes to the child
    assert len(big.encode()) >= parser.child_from_bytes
    reloaded(holder, path, big, caplog)
    assert asked == [big.encode()]
    parser.close()


def test_close_ends_the_child(tmp_path: Path) -> None:
    parser = MapParser(child_from_bytes=0)
    parser.start()
    proc = parser._proc
    assert proc is not None and proc.poll() is None
    parser.close()
    assert proc.poll() == 0  # it saw the pipe close and left by itself
    assert parser._proc is None
    parser.close()  # twice is fine


def test_a_child_that_cannot_start_leaves_parsing_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    parser = MapParser(child_from_bytes=0)

    def refuse() -> None:
        raise OSError("no such file")

    monkeypatch.setattr(parser, "_spawn", refuse)
    path = tmp_path / "migration_map.yaml"
    path.write_text(a_map(5))
    holder = holder_for(path, parser)
    logged = reloaded(holder, path, a_map(5, {1}), caplog)
    assert "map parser process failed (cannot start: no such file)" in logged
    assert holder.table is not None and holder.table.lookup("GET", "/api/r1/2").owner.value == "new"


def test_without_the_child_the_same_maps_load(tmp_path: Path) -> None:
    path = tmp_path / "migration_map.yaml"
    path.write_text(a_map(12))
    holder = holder_for(path, MapParser(child=False))
    text = a_map(12, {2})
    path.write_text(text)
    assert (result := holder.check()) is not None and result.ok
    same_as_a_fresh_load(holder, text, path)


@pytest.mark.anyio
async def test_the_gateway_reloads_through_the_child_and_ends_it_on_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(a_map(8))
    gw = Gateway(
        GatewaySettings(
            map_path=path,
            store_url=f"sqlite:///{tmp_path}/store.db",
            legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
            native_app="tests.gateway.wsgi_fixtures:native_app",
        )
    )
    assert gw.parser._proc is None  # a Gateway that never starts leaves no process behind
    await gw.startup({})
    try:
        child = gw.parser._proc
        assert child is not None and child.poll() is None
        path.write_text(a_map(8, {2}))
        deadline = time.monotonic() + 10
        while gw.holder.table is None or gw.holder.table.lookup("GET", "/api/r2/1").owner.value != "new":
            assert time.monotonic() < deadline, "the edit was never served"
            await asyncio.sleep(0.02)
    finally:
        await gw.shutdown()
    assert child.poll() == 0 and gw.parser._proc is None


def test_every_reload_is_a_delta_from_the_child_even_the_first_and_after_a_restart(
    tmp_path: Path, parser: MapParser
) -> None:
    # the serving process then redoes the edited routes only (gateway.table._patched); the
    # child learns the serving map at start, and again when it is replaced
    path = tmp_path / "migration_map.yaml"
    path.write_text(a_map(40))
    holder = holder_for(path, parser)
    for edit, positions in (({7}, (7,)), ({7, 20}, (20,)), (set(), (7, 20))):
        text = a_map(40, edit)
        path.write_text(text)
        before = holder.table
        assert (result := holder.check()) is not None and result.ok
        assert holder.loaded is not None and holder.loaded.delta is not None
        assert holder.loaded.delta.positions == positions
        same_as_a_fresh_load(holder, text, path)
        assert holder.table is not None and before is not None
        assert holder.table.routes[0] is before.routes[0]  # patched, not rebuilt
    assert parser._proc is not None
    parser._proc.kill()
    parser._proc.wait()
    text = a_map(40, {3})
    path.write_text(text)
    assert (result := holder.check()) is not None and result.ok
    assert holder.loaded is not None and holder.loaded.delta is not None
    assert holder.loaded.delta.positions == (3,)
    same_as_a_fresh_load(holder, text, path)
    # a route added at the top moves every line: a delta of changes, but the table is rebuilt
    text = a_map(40, {3}).replace("routes:\n", "routes:\n  - {id: top, path: /top, methods: [GET]}\n")
    path.write_text(text)
    assert (result := holder.check()) is not None and result.ok
    assert holder.loaded is not None and holder.loaded.delta is not None
    assert holder.loaded.delta.positions is None
    assert [c["route_id"] for c in holder.loaded.delta.changes] == ["top"]
    same_as_a_fresh_load(holder, text, path)


def test_a_delta_against_a_map_the_gateway_does_not_hold_is_parsed_here(
    tmp_path: Path, parser: MapParser, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # a child that lost track of the serving map: its delta must not patch the wrong table
    path = tmp_path / "migration_map.yaml"
    path.write_text(a_map(10))
    holder = holder_for(path, parser)
    real_ask = parser._ask

    def confused(raw: bytes, file: str) -> tuple[object, ...]:
        reply = real_ask(raw, file)
        return (*reply[:-1], ("0" * 64, *reply[-1][1:]))

    monkeypatch.setattr(parser, "_ask", confused)
    text = a_map(10, {2})
    logged = reloaded(holder, path, text, caplog)
    assert "map parser process failed (a delta against a map this process does not hold)" in logged
    assert holder.loaded is not None and holder.loaded.delta is None
    same_as_a_fresh_load(holder, text, path)


BUSY_THEN_WORKER = """
import runpy, sys, time
busy, idle, spin_for = (float(a) for a in sys.argv[1:])
started = time.monotonic()
while time.monotonic() - started < spin_for:  # `busy` of every `busy + idle` seconds on the CPU
    burst = time.process_time()
    while time.process_time() - burst < busy:
        pass
    time.sleep(idle)
runpy.run_module("gateway.map_worker", run_name="__main__")
"""


def slow_parser(monkeypatch: pytest.MonkeyPatch, busy: float, idle: float, spin_for: float, **kw: float) -> tuple[MapParser, list[subprocess.Popen[bytes]]]:
    parser = MapParser(child_from_bytes=0, **kw)  # type: ignore[arg-type]
    started: list[subprocess.Popen[bytes]] = []
    command = [sys.executable, "-c", BUSY_THEN_WORKER, str(busy), str(idle), str(spin_for)]

    def spawn() -> subprocess.Popen[bytes]:
        started.append(subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        return started[-1]

    monkeypatch.setattr(parser, "_spawn", spawn)
    return parser, started


def flip_through(parser: MapParser, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> tuple[MapHolder, Path, str, str, float]:
    """A 10-route map loaded, then one owner flipped and reloaded through `parser`: the holder,
    the map's path, the new text, what was logged, and the seconds the reload took."""
    path = tmp_path / "migration_map.yaml"
    path.write_text(a_map(10))
    holder = holder_for(path, parser)
    text = a_map(10, {3})
    began = time.monotonic()
    logged = reloaded(holder, path, text, caplog)
    return holder, path, text, logged, time.monotonic() - began


def test_a_child_slow_but_progressing_is_waited_for_past_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # at half load the child gets only the idle half of the core: parsing here instead would
    # hold the serving loop for the whole parse, so a child on half a core is waited for
    parser, started = slow_parser(monkeypatch, busy=0.05, idle=0.05, spin_for=1.5, deadline=0.5)
    holder, path, text, logged, took = flip_through(parser, tmp_path, caplog)
    assert logged == ""
    assert took >= 1.5 and len(started) == 1
    assert holder.loaded is not None and holder.loaded.delta is not None  # the child's answer
    same_as_a_fresh_load(holder, text, path)
    parser.close()


def test_a_child_on_a_sliver_of_a_core_is_given_up_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # a saturated core: the idle-priority child gets a little CPU now and then, not enough to
    # finish while the edit still matters
    parser, started = slow_parser(monkeypatch, busy=0.005, idle=0.1, spin_for=60, deadline=0.5)
    holder, path, text, logged, took = flip_through(parser, tmp_path, caplog)
    assert took < 5
    assert "map parser process failed (no answer within 0.5 s, on " in logged
    assert f"of a core); parsing {path} in-process" in logged
    assert started[0].wait(5) != 0 and parser._proc is None
    same_as_a_fresh_load(holder, text, path)
    parser.close()


def test_a_child_busy_for_longer_than_the_longest_wait_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    parser, started = slow_parser(monkeypatch, busy=0.05, idle=0.0, spin_for=60, deadline=0.5, longest=1.2)
    holder, path, text, logged, took = flip_through(parser, tmp_path, caplog)
    assert 1.2 <= took < 5
    assert f"map parser process failed (no answer within 1.2 s); parsing {path} in-process" in logged
    assert started[0].wait(5) != 0 and parser._proc is None
    same_as_a_fresh_load(holder, text, path)
    parser.close()
