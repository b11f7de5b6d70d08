import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from gateway.metrics import GatewayMetrics
from gateway.reloader import MapHolder, MapWatcher

V1 = "version: 1\nroutes:\n  - {id: users.get, path: '/api/users/<int:id>', methods: [GET], owner: new}\n"
V2 = V1.replace("owner: new", "owner: legacy")
BROKEN = V1 + "  - {id: users.get, path: /x, owner: new}\n"



def owner(holder: MapHolder) -> str:
    assert holder.table is not None
    return holder.table.lookup("GET", "/api/users/1").owner.value


def counts(metrics: GatewayMetrics) -> tuple[float, float]:
    get = metrics.registry.get_sample_value
    return get("gateway_map_reloads_total", {"result": "ok"}) or 0, get("gateway_map_reloads_total", {"result": "error"}) or 0


def test_check_reloads_only_changed_valid_content(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "migration_map.yaml"
    path.write_text(V1)
    metrics = GatewayMetrics()
    holder = MapHolder(path, metrics)
    holder.load_initial()
    assert owner(holder) == "new"
    assert holder.check() is None  # unchanged content: nothing to do
    path.write_text(V2)
    result = holder.check()
    assert result is not None and result.ok and owner(holder) == "legacy"
    table_before = holder.table
    with caplog.at_level(logging.ERROR, logger="gateway.map"):
        path.write_text(BROKEN)
        failed = holder.check()
    assert failed is not None and not failed.ok
    assert holder.table is table_before and owner(holder) == "legacy"  # last good map serves on
    assert f"{path}:4: duplicate route id 'users.get' (first defined at line 3)" in caplog.text
    assert counts(metrics) == (2, 1)
    assert holder.check() is None  # the same broken content is reported once, not every poll


def test_deleted_map_keeps_last_good_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "migration_map.yaml"
    path.write_text(V1)
    holder = MapHolder(path, GatewayMetrics())
    holder.load_initial()
    path.unlink()
    with caplog.at_level(logging.ERROR, logger="gateway.map"):
        result = holder.check()
    assert result is not None and not result.ok
    assert result.error == f"{path}: map file not found; keeping the last good map"
    assert owner(holder) == "new"
    assert f"map reload rejected, still serving {holder.loaded.short_hash if holder.loaded else ''}" in caplog.text


def test_a_loader_bug_refuses_the_map_instead_of_ending_the_watcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "migration_map.yaml"
    path.write_text(V1)
    metrics = GatewayMetrics()
    holder = MapHolder(path, metrics)
    holder.load_initial()

    def broken(raw: bytes, file: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("gateway.reloader.load_bytes", broken)
    path.write_text(V2)
    with caplog.at_level(logging.ERROR, logger="gateway.map"):
        result = holder.check()
    assert result is not None and not result.ok
    assert result.error == f"{path}: internal error while loading the map: RuntimeError: a bug"
    assert owner(holder) == "new" and counts(metrics) == (1, 1)
    assert "Traceback" in caplog.text  # logged with its stack, for the bug report


@pytest.mark.anyio
async def test_watcher_picks_up_atomic_rename_and_symlink_swap(tmp_path: Path) -> None:
    # Kubernetes-style: the map is a symlink into a ..data directory that is swapped whole
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "migration_map.yaml").write_text(V1)
    os.symlink("v1", tmp_path / "..data")
    os.symlink("..data/migration_map.yaml", tmp_path / "migration_map.yaml")
    holder = MapHolder(tmp_path / "migration_map.yaml", GatewayMetrics())
    holder.load_initial()
    watcher = MapWatcher(holder, poll_interval=5)
    watcher.start()
    try:
        await wait_until_watching(holder, tmp_path)
        (tmp_path / "v2").mkdir()
        (tmp_path / "v2" / "migration_map.yaml").write_text(V2)
        os.symlink("v2", tmp_path / "..data_tmp")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        await wait_for_owner(holder, "legacy")
        # editor-style: write a temp file and rename it over the map
        direct = tmp_path / "migration_map.yaml"
        direct.unlink()
        tmp = tmp_path / ".migration_map.yaml.swp"
        tmp.write_text(V1)
        os.replace(tmp, direct)
        await wait_for_owner(holder, "new")
    finally:
        await watcher.stop()


@pytest.mark.anyio
async def test_watcher_serves_on_through_junk_and_takes_the_next_good_map(tmp_path: Path) -> None:
    # a PyYAML ReaderError once escaped check() and ended the watcher: no later edit was seen
    path = tmp_path / "migration_map.yaml"
    path.write_text(V1)
    metrics = GatewayMetrics()
    holder = MapHolder(path, metrics)
    holder.load_initial()
    watcher = MapWatcher(holder, poll_interval=5)
    watcher.start()
    try:
        await wait_until_watching(holder, tmp_path)
        path.write_bytes(b"\x00\x01\x02version: 1\n")
        deadline = time.monotonic() + 2
        while counts(metrics)[1] == 0:
            assert time.monotonic() < deadline, "the junk was never looked at"
            await asyncio.sleep(0.02)
        assert owner(holder) == "new"
        path.write_text(V2)
        await wait_for_owner(holder, "legacy")
        assert counts(metrics) == (2, 1)
    finally:
        await watcher.stop()


TWO_ROUTES = V1 + "  - {id: orders.get, path: '/api/orders/<int:id>', methods: [GET], owner: new}\n"


@pytest.mark.anyio
async def test_a_map_written_in_pieces_is_read_whole(tmp_path: Path) -> None:
    # `cat > migration_map.yaml` or a tool that writes in place: the first piece alone is a valid
    # map with one route less, which the watcher once installed until the next event came
    path = tmp_path / "migration_map.yaml"
    path.write_text(V2)
    installed: list[int] = []
    holder = MapHolder(path, GatewayMetrics(), on_change=lambda _old, new: installed.append(len(new.map.routes)))
    holder.load_initial()
    watcher = MapWatcher(holder, poll_interval=5)
    watcher.start()
    try:
        await wait_until_watching(holder, tmp_path)
        installed.clear()
        with path.open("w") as f:
            f.write(V1)  # a whole, valid map on its own...
            f.flush()
            await asyncio.sleep(0.12)  # ...for longer than the watcher's debounce
            f.write(TWO_ROUTES[len(V1):])
        deadline = time.monotonic() + 3
        while not installed:
            assert time.monotonic() < deadline, "the new map was never loaded"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        assert installed == [2]  # the whole file, never its first piece
    finally:
        await watcher.stop()


async def wait_for_owner(holder: MapHolder, expected: str) -> None:
    deadline = time.monotonic() + 2  # well under the 5 s poll: only a file event gets here in time
    while time.monotonic() < deadline:
        if owner(holder) == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"owner is still {owner(holder)!r}, expected {expected!r}")


async def wait_until_watching(holder: MapHolder, directory: Path) -> None:
    """The watcher registers with the OS asynchronously: poke the directory until it reacts."""
    deadline = time.monotonic() + 3
    before = holder.checks
    while holder.checks == before:
        assert time.monotonic() < deadline, "the watcher never reacted to a file event"
        (directory / "poke").write_text(str(time.monotonic()))
        await asyncio.sleep(0.05)


def test_a_reloads_audit_entry_is_written_with_collections_paused(tmp_path: Path) -> None:
    # built after the swap, the audit entry's objects would otherwise be walked by a young
    # collection with the GIL held just when the first requests on the new table arrive
    import gc

    path = tmp_path / "migration_map.yaml"
    path.write_text(V1)
    paused: list[bool] = []
    holder = MapHolder(path, GatewayMetrics(), on_change=lambda _old, _new: paused.append(not gc.isenabled()))
    holder.load_initial()
    path.write_text(V2)
    assert holder.check() is not None
    assert paused == [True, True] and gc.isenabled()
