import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import gil_slices
from gateway.gil_slices import SLICE_S, short_gil_slices
from gateway.map_worker import MapParser
from gateway.metrics import GatewayMetrics
from gateway.reloader import MapHolder

V1 = "version: 1\nroutes:\n  - {id: users.get, path: '/api/users/<int:id>', methods: [GET], owner: new}\n"
V2 = V1.replace("owner: new", "owner: legacy")


@pytest.fixture(autouse=True)
def default_interval() -> Iterator[float]:
    before = sys.getswitchinterval()
    yield before
    assert sys.getswitchinterval() == before  # whatever a test did, the interval is back
    assert gil_slices._depth == 0


def test_a_block_shortens_the_interval_and_puts_it_back_even_when_it_raises(default_interval: float) -> None:
    with short_gil_slices():
        assert sys.getswitchinterval() == pytest.approx(SLICE_S)
    assert sys.getswitchinterval() == default_interval
    with pytest.raises(RuntimeError), short_gil_slices():
        raise RuntimeError("boom")
    assert sys.getswitchinterval() == default_interval


def test_nested_and_overlapping_blocks_restore_the_interval_of_before_the_first(
    default_interval: float,
) -> None:
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with short_gil_slices():
            entered.set()
            leave.wait(5)

    with short_gil_slices():
        with short_gil_slices():
            pass
        assert sys.getswitchinterval() == pytest.approx(SLICE_S)  # the inner block left it short
        thread = threading.Thread(target=other)
        thread.start()
        assert entered.wait(5)
    # this thread left first: the other is still inside, so the interval stays short
    assert sys.getswitchinterval() == pytest.approx(SLICE_S)
    leave.set()
    thread.join(5)
    assert sys.getswitchinterval() == default_interval


def test_an_interval_already_shorter_is_kept() -> None:
    before = sys.getswitchinterval()
    sys.setswitchinterval(SLICE_S / 2)
    try:
        with short_gil_slices():
            assert sys.getswitchinterval() == pytest.approx(SLICE_S / 2)
        assert sys.getswitchinterval() == pytest.approx(SLICE_S / 2)
    finally:
        sys.setswitchinterval(before)


@pytest.mark.parametrize("child", [True, False], ids=["child", "in-process"])
def test_a_reload_swaps_and_records_its_change_in_short_slices(
    tmp_path: Path, child: bool, default_interval: float
) -> None:
    seen: list[float] = []
    path = tmp_path / "migration_map.yaml"
    path.write_text(V1)
    parser = MapParser(child=child, child_from_bytes=0)
    assembled: list[float] = []
    assemble = parser._assemble

    def watched(*args: object) -> object:
        assembled.append(sys.getswitchinterval())  # the child's reply, turned into a map here
        return assemble(*args)  # type: ignore[arg-type]

    parser._assemble = watched  # type: ignore[method-assign,assignment]
    parser.start()
    try:
        holder = MapHolder(
            path,
            GatewayMetrics(),
            on_change=lambda _o, _n: seen.append(sys.getswitchinterval()),
            parser=parser,
        )
        holder.load_initial()
        path.write_text(V2)
        result = holder.check()
    finally:
        parser.close()
    assert result is not None and result.ok
    assert seen == [pytest.approx(SLICE_S)] * 2  # the audit write (on_change) of both loads
    assert assembled == ([pytest.approx(SLICE_S)] if child else [])  # the reload's reply
    assert sys.getswitchinterval() == default_interval


def test_a_failing_audit_write_still_puts_the_interval_back(tmp_path: Path, default_interval: float) -> None:
    def fail(_old: object, _new: object) -> None:
        raise ConnectionError("store down")

    path = tmp_path / "migration_map.yaml"
    path.write_text(V1)
    holder = MapHolder(path, GatewayMetrics(), on_change=fail)
    holder.load_initial()
    path.write_text(V2)
    result = holder.check()
    assert result is not None and result.ok
    assert sys.getswitchinterval() == default_interval
