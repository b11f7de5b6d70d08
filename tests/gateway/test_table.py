import dataclasses
import re

import pytest

from gateway.map_loader import Delta, LoadedMap, parse_map
from gateway.map_schema import Owner
from gateway.paths import parse_template
from gateway.table import UNMAPPED_ID, _pick, build_table

MAP = """\
version: 1
defaults: {owner: legacy}
routes:
  - {id: users.list, path: /api/users, methods: [GET], owner: new}
  - {id: users.create, path: /api/users, methods: [POST], owner: legacy}
  - {id: users.get, path: '/api/users/<int:user_id>', methods: [GET], owner: new}
  - {id: users.by_name, path: '/api/users/<name>', owner: new}
  - {id: users.export, path: /api/users/export.csv, methods: [GET], owner: legacy}
  - {id: files.edit, path: '/files/<path:p>/edit', owner: new}
  - {id: files.any, path: '/files/{p:path}', methods: [GET], owner: legacy}
  - {id: reports, path: '/reports/<name>.csv', owner: new}
  - {id: prices, path: '/prices/<float:x>', owner: new}
  - {id: tokens, path: '/t/<uuid:u>', owner: new}
  - {id: trailing, path: /slash/, owner: new}
"""


@pytest.fixture(scope="module")
def table():  # type: ignore[no-untyped-def]
    return build_table(parse_map(MAP))


@pytest.mark.parametrize(
    ("method", "path", "route_id"),
    [
        ("GET", "/api/users", "users.list"),
        ("POST", "/api/users", "users.create"),
        ("PUT", "/api/users", UNMAPPED_ID),
        ("GET", "/api/users/7", "users.get"),
        ("HEAD", "/api/users/7", "users.get"),
        ("DELETE", "/api/users/7", "users.by_name"),  # int entry has no DELETE; string entry takes all
        ("GET", "/api/users/bob", "users.by_name"),
        ("GET", "/api/users/export.csv", "users.export"),  # static beats <name>
        ("GET", "/files/a/b/edit", "files.edit"),
        ("GET", "/files/a/b", "files.any"),
        ("POST", "/files/a/b", UNMAPPED_ID),
        ("GET", "/reports/q3.csv", "reports"),
        ("GET", "/reports/q3.json", UNMAPPED_ID),
        ("GET", "/prices/1.5", "prices"),
        ("GET", "/prices/15", UNMAPPED_ID),
        ("GET", "/t/12345678-1234-1234-1234-1234567890ab", "tokens"),
        ("GET", "/t/not-a-uuid", UNMAPPED_ID),
        ("GET", "/slash/", "trailing"),
        ("GET", "/slash", UNMAPPED_ID),
        ("GET", "/", UNMAPPED_ID),
        ("GET", "/api/users/7/extra", UNMAPPED_ID),
    ],
)
def test_lookup(table, method: str, path: str, route_id: str) -> None:  # type: ignore[no-untyped-def]
    assert table.lookup(method, path).id == route_id


BACKTRACK_MAP = """\
version: 1
routes:
  - {id: a.int.b, path: '/a/<int:x>/b', owner: new}
  - {id: a.str.c, path: '/a/<y>/c', owner: new}
  - {id: m.get, path: '/m/<int:x>', methods: [GET], owner: new}
  - {id: m.post, path: '/m/<y>', methods: [POST], owner: new}
  - {id: r.get, path: '/r/<int:x>/s', methods: [GET], owner: new}
"""


@pytest.mark.parametrize(
    ("method", "path", "route_id"),
    [
        ("GET", "/a/5/b", "a.int.b"),
        ("GET", "/a/5/c", "a.str.c"),  # the first choice (int) dead-ends: the walk backs out
        ("GET", "/a/5/x", UNMAPPED_ID),
        ("POST", "/m/5", "m.post"),  # the int entry has no POST: the string one takes it
        ("GET", "/m/x", UNMAPPED_ID),
        ("GET", "/r/5/s", "r.get"),
        ("POST", "/r/5/s", UNMAPPED_ID),  # no second way anywhere on the path: one descent decides
        ("GET", "/r/x/s", UNMAPPED_ID),
    ],
)
def test_a_dead_end_is_backed_out_of_only_where_there_was_another_way(method: str, path: str, route_id: str) -> None:
    assert build_table(parse_map(BACKTRACK_MAP)).find(method, path).id == route_id


def test_lookup_agrees_with_the_full_walk_on_every_path_of_known_segments() -> None:
    # the shortcut (one descent decides a path when no node on it forks) must answer exactly
    # what the full backtracking walk answers
    import itertools

    segments = ["api", "users", "7", "bob", "export.csv", "files", "a", "b", "edit", "5", "c", "m", "r", "s",
                "reports", "q3.csv", "prices", "1.5", "t", "x", ""]
    for text in (MAP, BACKTRACK_MAP):
        t = build_table(parse_map(text))
        for depth in range(1, 4):
            for parts in itertools.product(segments, repeat=depth):
                path = "/" + "/".join(parts)
                for method in ("GET", "POST", "DELETE"):
                    static = t._static.get(path)
                    walked = ((_pick(static, method) if static is not None else None)
                              or t._walk(t._root, path[1:].split("/"), 0, method) or t.default)
                    assert t.find(method, path) is walked, (method, path)


def test_unmapped_goes_to_default_owner() -> None:
    t = build_table(parse_map("version: 1\ndefaults: {owner: new}\n"))
    route = t.lookup("GET", "/anything")
    assert (route.id, route.owner) == (UNMAPPED_ID, Owner.NEW)


def test_route_carries_owner_and_line(table) -> None:  # type: ignore[no-untyped-def]
    route = table.lookup("GET", "/api/users/1")
    assert route.owner is Owner.NEW and route.line == 6 and route.path == "/api/users/<int:user_id>"


def test_large_tables_route_exactly() -> None:
    lines = ["version: 1", "routes:"]
    for i in range(2000):
        lines.append(f"  - {{id: s{i}, path: /static/{i}/items, owner: new}}")
        lines.append(f"  - {{id: t{i}, path: '/t{i}/<int:id>/items', methods: [GET], owner: new}}")
    t = build_table(parse_map("\n".join(lines)))
    assert t.lookup("GET", "/static/1999/items").id == "s1999"
    assert t.lookup("GET", "/t1234/5/items").id == "t1234"
    assert t.lookup("GET", "/t1234/x/items").id == UNMAPPED_ID


def test_routes_carry_their_rollout_sections() -> None:
    # regression: build_table once dropped canary, fallback and guard on the floor
    t = build_table(parse_map(
        "version: 1\nroutes:\n  - {id: c, path: /c, methods: [GET], canary: {percent: 5}, guard: {min_samples: 3}}\n"
        "  - {id: f, path: /f, methods: [GET], owner: new, fallback: {timeout_ms: 100}}\n"
    ))
    c, f = t.lookup("GET", "/c"), t.lookup("GET", "/f")
    assert c.canary is not None and c.canary.percent == 5 and c.guard is not None and c.guard.min_samples == 3
    assert f.fallback is not None and f.fallback.timeout_ms == 100


@pytest.mark.parametrize("segment", ["0", "42", "007", "١٢٣", "²", "4a", "-1", "1.5", "", " 1", "½", "٣٤"])
def test_the_fast_segment_tests_agree_with_the_converters_regexes(segment: str) -> None:
    """lookup() tests int segments with str.isdecimal and string ones with bool, not regexes:
    they must accept exactly what the converters' patterns accept."""
    from gateway.paths import CONVERTERS
    from gateway.table import _matcher

    for source, conv in (("/x/<int:n>", "int"), ("/x/<name>", "string")):
        template = parse_template(source)
        matches = _matcher(template.segments[1])
        expected = re.fullmatch(CONVERTERS[conv], segment) is not None and "/" not in segment
        assert bool(matches(segment)) is expected, (conv, segment)


def test_cached_answers_are_the_walks_and_the_cache_stays_bounded() -> None:
    from gateway import table as table_module

    t = build_table(parse_map(
        "version: 1\nroutes:\n"
        "  - {id: item, path: '/items/<int:id>', methods: [GET], owner: new}\n"
        "  - {id: any, path: '/items/<name>', methods: [GET, POST], owner: legacy}\n"
    ))
    for method, path in [("GET", "/items/1"), ("POST", "/items/1"), ("GET", "/items/x"), ("PUT", "/items/1")]:
        first = t.lookup(method, path)
        assert t.lookup(method, path) is first is t.find(method, path)  # a hit is the walk's answer
    assert t.lookup("GET", "/items/1").id == "item" and t.lookup("POST", "/items/1").id == "any"
    for i in range(table_module._CACHED_PATHS + 10):
        assert t.lookup("GET", f"/items/{i}").id == "item"
    assert len(t._found) <= table_module._CACHED_PATHS
    long = "/items/" + "x" * table_module._CACHED_PATH_CHARS
    assert t.lookup("GET", long).id == "any" and ("GET", long) not in t._found


def test_a_table_patched_by_a_reload_does_not_answer_from_the_old_one_s_cache() -> None:
    # regression: a reload that changes an owner patches the table (RoutingTable.replacing);
    # the patched table must not start from the old table's cached templated answers
    text = "version: 1\nroutes:\n  - {id: item, path: '/items/<int:n>', methods: [GET], owner: legacy}\n"
    first = parse_map(text)
    old = build_table(first)
    assert old.lookup("GET", "/items/7").owner is Owner.LEGACY  # now cached in the old table
    second = parse_map(text.replace("owner: legacy", "owner: new"))
    new = build_table(second, (first, old))
    assert new.lookup("GET", "/items/7").owner is Owner.NEW
    assert old.lookup("GET", "/items/7").owner is Owner.LEGACY  # the old table is left as it was


def _edited(first: LoadedMap, text: str, i: int) -> LoadedMap:
    """`text` loaded as a reload through the map parser gives it: the routes of `first` but
    route i, and a delta naming position i."""
    fresh = parse_map(text)
    routes = list(first.map.routes)
    routes[i] = fresh.map.routes[i]
    templates = list(first.templates)
    templates[i] = fresh.templates[i]
    mmap = fresh.map.model_copy(update={"routes": tuple(routes)})
    delta = Delta(first.sha256, (i,), [], "")
    return dataclasses.replace(fresh, map=mmap, templates=tuple(templates), delta=delta)


@pytest.mark.parametrize(
    ("edit", "patched"),
    [
        (("owner: legacy", "owner: new"), True),
        (("owner: legacy", "owner: legacy, shadow: {sample: 0.5}"), True),
        (("methods: [GET]", "methods: [GET, POST]"), False),  # another slot: a new trie
        (("/b/<int:n>", "/b/<n>"), False),
    ],
)
def test_a_delta_patches_the_serving_table_or_builds_a_new_one(edit: tuple[str, str], patched: bool) -> None:
    lines = [
        f"  - {{id: r{i}, path: '/{c}/<int:n>', methods: [GET], owner: legacy}}" for i, c in enumerate("abc")
    ]
    text = "version: 1\nroutes:\n" + "\n".join(lines) + "\n"
    first = parse_map(text)
    old = build_table(first)
    edited = text.replace(lines[1], lines[1].replace(*edit))
    second = _edited(first, edited, 1)
    new = build_table(second, (first, old))
    expected = build_table(parse_map(edited))
    assert new.routes == expected.routes
    for method in ("GET", "POST", "HEAD"):
        for path in ("/a/1", "/b/2", "/b/x", "/c/3"):
            assert new.lookup(method, path) == expected.lookup(method, path)
    assert (new.routes[0] is old.routes[0]) and (new._root is not old._root)
    assert (new.routes[2] is old.routes[2]) is True
    # patched: the trie's untouched branches are the old table's own
    assert (new._root.static["a"] is old._root.static["a"]) is patched
