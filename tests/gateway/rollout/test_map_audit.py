"""Map changes in the audit log: the diff, one entry however many workers reload, and a store
that fails never stops a reload."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.map_loader import LoadedMap, parse_map
from gateway.map_worker import MapParser
from gateway.metrics import GatewayMetrics
from gateway.parity.store import dumps
from gateway.reloader import MapHolder
from gateway.rollout.state import AuditKind, RolloutStore, map_changes
from gateway.rollout.store_changes import details_json, snapshot_json
from tests.gateway.rollout.test_state import race

BASE = """\
version: 1
routes:
  - {id: users.get, path: '/api/users/<int:id>', methods: [GET], owner: legacy}
  - {id: products.search, path: /api/products, methods: [GET], owner: legacy, canary: {percent: 10}}
  - {id: orders.list, path: /api/orders, methods: [GET], owner: new}
"""
FLIPPED = BASE.replace("methods: [GET], owner: legacy}", "methods: [GET], owner: new}", 1)
RAISED = BASE.replace("percent: 10", "percent: 25")


def loaded(text: str) -> LoadedMap:
    return parse_map(text, "migration_map.yaml")


def test_map_changes_name_owner_flips_percentages_and_routes() -> None:
    old = loaded(BASE)
    assert map_changes(old, loaded(BASE)) == []
    assert map_changes(old, loaded(FLIPPED)) == [
        {"route_id": "users.get", "change": "owner", "from": "legacy", "to": "new"}
    ]
    assert map_changes(old, loaded(RAISED)) == [
        {"route_id": "products.search", "change": "canary_percent", "from": 10, "to": 25}
    ]
    no_canary = BASE.replace(", canary: {percent: 10}", "")
    assert map_changes(old, loaded(no_canary)) == [
        {"route_id": "products.search", "change": "canary_percent", "from": 10, "to": None}
    ]
    edited = BASE.replace("  - {id: orders.list, path: /api/orders, methods: [GET], owner: new}\n", "")
    edited += "  - {id: orders.create, path: /api/orders, methods: [POST]}\n"
    edited = edited.replace("routes:", "defaults: {owner: new}\nroutes:")
    assert map_changes(old, loaded(edited)) == [
        {"route_id": None, "change": "default_owner", "from": "legacy", "to": "new"},
        # orders.create has no owner of its own: it takes the new default
        {"route_id": "orders.create", "change": "added", "owner": "new", "canary_percent": None},
        {"route_id": "orders.list", "change": "removed", "owner": "new", "canary_percent": None},
    ]
    first = map_changes(None, old)
    assert [(c["route_id"], c["change"]) for c in first] == [
        ("orders.list", "added"), ("products.search", "added"), ("users.get", "added")
    ]
    assert first[1] == {"route_id": "products.search", "change": "added", "owner": "legacy", "canary_percent": 10}


def test_a_reload_is_recorded_with_both_hashes_and_what_changed(db_url: str) -> None:
    store = RolloutStore(db_url)
    old, new = loaded(BASE), loaded(FLIPPED)
    store.record_map_change(old, new)
    (entry,) = store.audit_entries()
    assert (entry.kind, entry.route_id, entry.actor) == (AuditKind.MAP_RELOAD, None, "reload")
    assert entry.details["old_sha256"] == old.sha256 and entry.details["new_sha256"] == new.sha256
    assert entry.details["changes"] == [{"route_id": "users.get", "change": "owner", "from": "legacy", "to": "new"}]
    assert entry.summary == (
        f"map migration_map.yaml changed {old.short_hash} -> {new.short_hash}: users.get owner legacy -> new"
    )
    store.dispose()


def test_workers_reloading_the_same_change_write_one_entry(db_url: str) -> None:
    old, new = loaded(BASE), loaded(RAISED)
    race(db_url, lambda s: s.record_map_change(old, new))
    store = RolloutStore(db_url)
    (entry,) = store.audit_entries()
    assert entry.details["changes"][0]["change"] == "canary_percent"
    store.dispose()


def test_a_map_that_comes_back_is_recorded_each_time(db_url: str) -> None:
    store = RolloutStore(db_url)
    a, b = loaded(BASE), loaded(FLIPPED)
    for old, new in ((a, b), (b, a), (a, b)):
        store.record_map_change(old, new)
        store.record_map_change(old, new)  # a second worker reporting the same step
    assert [e.details["new_sha256"] for e in store.audit_entries()] == [b.sha256, a.sha256, b.sha256]
    store.dispose()


def test_a_start_is_recorded_only_when_the_map_differs_from_the_last_on_record(db_url: str) -> None:
    store = RolloutStore(db_url)
    store.ensure_schema()  # a store that exists (a SQLite file not created yet records no start)
    a, b = loaded(BASE), loaded(FLIPPED)
    store.record_map_change(None, a)  # the first start on a store: every route is new
    store.record_map_change(None, a)  # a restart, or another instance, on the same map
    store.record_map_change(None, b)  # an instance deployed with a new map: diffed against the last one
    first, started = reversed(store.audit_entries())
    assert first.summary.startswith(f"map migration_map.yaml loaded ({a.short_hash}): added orders.list")
    assert started.details["old_sha256"] == a.sha256 and started.details["new_sha256"] == b.sha256
    assert started.details["changes"] == [{"route_id": "users.get", "change": "owner", "from": "legacy", "to": "new"}]
    store.dispose()


def write(path: Path, text: str) -> None:
    path.write_text(text)


def test_two_holders_reloading_one_file_write_one_entry_per_change(tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "migration_map.yaml"
    write(path, BASE)
    stores = [RolloutStore(db_url), RolloutStore(db_url)]
    stores[0].ensure_schema()
    holders = [MapHolder(path, GatewayMetrics(), on_change=s.record_map_change) for s in stores]
    for holder in holders:
        holder.load_initial()
    write(path, FLIPPED)
    for holder in holders:
        result = holder.check()
        assert result is not None and result.ok
    write(path, RAISED)
    for holder in holders:
        holder.check()
    entries = stores[0].audit_entries()
    assert [e.kind for e in entries] == [AuditKind.MAP_RELOAD] * 3  # first load, two changes
    raised, flipped, first = entries
    assert first.details["old_sha256"] is None
    assert [c["change"] for c in flipped.details["changes"]] == ["owner"]
    # FLIPPED -> RAISED: users.get flips back and the canary rises, both in one entry
    assert [(c["route_id"], c["change"]) for c in raised.details["changes"]] == [
        ("products.search", "canary_percent"), ("users.get", "owner")
    ]
    for s in stores:
        s.dispose()


def test_a_failing_store_never_breaks_a_reload(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "migration_map.yaml"
    write(path, BASE)
    store = RolloutStore("postgresql://postgres@127.0.0.1:1/none")  # nothing listens there
    holder = MapHolder(path, GatewayMetrics(), on_change=store.record_map_change)
    with caplog.at_level(logging.ERROR, logger="gateway.map"):
        holder.load_initial()
        write(path, FLIPPED)
        result = holder.check()
    assert result is not None and result.ok
    assert holder.table is not None and holder.table.lookup("GET", "/api/users/1").owner.value == "new"
    assert "is serving, but its change was not recorded: DatabaseError: connection failed" in caplog.text
    assert caplog.text.count("not recorded") == 2  # the first load and the reload


def test_a_gateway_start_on_a_store_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "migration_map.yaml"
    write(path, BASE)
    store = RolloutStore(f"sqlite:///{tmp_path}/store.db")
    MapHolder(path, GatewayMetrics(), on_change=store.record_map_change).load_initial()
    assert not (tmp_path / "store.db").exists()


@pytest.mark.parametrize("routes", [0, 1, 499, 500, 501, 1234])
def test_details_encoded_in_slices_are_the_same_text(routes: int) -> None:
    snapshot = {
        "default_owner": "legacy",
        "routes": {f"r{i}.é": {"owner": "new", "canary_percent": i % 3 or None} for i in range(routes)},
    }
    head = {"file": "m.yaml", "old_sha256": None, "new_sha256": "ab", "changes": [{"x": 1}]}
    assert snapshot_json(snapshot) == dumps(snapshot)
    assert details_json(head, snapshot_json(snapshot)) == dumps({**head, "snapshot": snapshot})
    assert details_json({}, snapshot_json(snapshot)) == dumps({"snapshot": snapshot})


def test_reloads_that_reuse_entries_record_the_same_changes_and_snapshots(db_url: str, tmp_path: Path) -> None:
    # the child's reloads keep the entry objects of unchanged routes; the snapshot of the new
    # map is then the last one with the changed routes redone: it must be the full one
    path = tmp_path / "migration_map.yaml"
    path.write_text(BASE)
    store = RolloutStore(db_url)
    parser = MapParser(child_from_bytes=0)  # small maps, through the child all the same
    holder = MapHolder(path, GatewayMetrics(), on_change=store.record_map_change, parser=parser)
    holder.load_initial()
    for text in (FLIPPED, RAISED, BASE, BASE + "  - {id: more, path: /more, methods: [GET]}\n"):
        path.write_text(text)
        before = holder.loaded
        assert (result := holder.check()) is not None and result.ok
        assert holder.loaded is not None and before is not None
        # the child found the changes and encoded the snapshot (a delta against the map it was
        # told serves at the start); an added route moves no line but changes the count
        delta = holder.loaded.delta
        assert delta is not None and delta.base_sha256 == before.sha256
        assert (delta.positions is None) == ("more" in text)
        expected = map_changes(loaded(_text_of(before)), loaded(text))
        entry = store.audit_entries()[0]
        assert entry.details["changes"] == expected
        full = {"default_owner": "legacy", "routes": {}}
        for e in loaded(text).map.routes:
            owner = (e.owner or holder.loaded.map.defaults.owner).value
            full["routes"][e.id] = {"owner": owner, "canary_percent": e.canary.percent if e.canary else None}
        assert entry.details["snapshot"] == full
    parser.close()
    store.dispose()


def _text_of(loaded_map: LoadedMap) -> str:
    texts = (BASE, FLIPPED, RAISED, BASE + "  - {id: more, path: /more, methods: [GET]}\n")
    return {loaded(t).sha256: t for t in texts}[loaded_map.sha256]
