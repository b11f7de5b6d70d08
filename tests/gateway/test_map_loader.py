import gc
from pathlib import Path

import pytest
import yaml

from gateway import map_loader, map_text
from gateway.map_loader import MAX_MAP_BYTES, MapError, load_map, parse_map
from gateway.map_schema import Owner

GOOD = """\
version: 1
defaults:
  owner: legacy
routes:
  - id: users.get
    path: /api/users/<int:user_id>
    methods: [GET]
    owner: new
  - id: users.create
    path: /api/users
    methods: [post]
"""


@pytest.fixture(autouse=True, params=["libyaml", "pure-python"])
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on libyaml's parser and on PyYAML's own, the fallback without libyaml."""
    if request.param == "libyaml" and not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(map_text, "LIBYAML", request.param == "libyaml")
    return str(request.param)


def problems(text: str) -> list[str]:
    with pytest.raises(MapError) as err:
        parse_map(text, "m.yaml")
    return [str(p) for p in err.value.problems]


def test_good_map_loads_with_lines_and_hash() -> None:
    loaded = parse_map(GOOD, "m.yaml")
    assert [r.id for r in loaded.map.routes] == ["users.get", "users.create"]
    assert loaded.lines == (5, 9)
    assert loaded.map.routes[1].methods == ("POST",)
    assert loaded.map.owner_of(loaded.map.routes[1]) is Owner.LEGACY
    assert len(loaded.sha256) == 64


def test_empty_routes_are_valid() -> None:
    assert parse_map("version: 1\n").map.routes == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nroutes: [\n", "m.yaml:3: invalid YAML"),
        ("- a\n- b\n", "m.yaml:1: the map must be a mapping"),
        ("", "m.yaml:1: the map must be a mapping"),
        ("version: 2\n", "m.yaml:1: version: unsupported map version 2"),
        ("routes: []\n", "m.yaml:1: version: required key is missing"),
        ("version: 1\nversoin: 1\n", "m.yaml:2: unknown key 'versoin' in (top level)"),
        (GOOD.replace("    owner: new", "    ownr: new"), "m.yaml:8: unknown key 'ownr' in routes[0]"),
        (GOOD.replace("owner: new", "owner: newer"), "m.yaml:8: routes[0].owner: Input should be 'legacy' or 'new'"),
        (GOOD.replace("[post]", "[post, FETCH]"), "m.yaml:11: routes[1].methods: unknown HTTP method 'FETCH'"),
        (GOOD.replace("[post]", "[]"), "m.yaml:11: routes[1].methods: must be a non-empty list"),
        (GOOD.replace("id: users.create", "id: 'bad id!'"), "m.yaml:9: routes[1].id: String should match pattern"),
        (GOOD.replace("    methods: [GET]\n", "    methods: [GET]\n    methods: [POST]\n"), "m.yaml:8: duplicate key 'methods'"),
        (GOOD.replace("id: users.create", "id: users.get"), "m.yaml:9: duplicate route id 'users.get' (first defined at line 5)"),
        (GOOD.replace("<int:user_id>", "<intt:user_id>"), "m.yaml:6: routes[0].path: path '/api/users/<intt:user_id>': unknown converter 'intt'"),
        (GOOD.replace("path: /api/users\n", "path: /api/users/{id:int}\n").replace("[post]", "[GET, POST]"),
         "m.yaml:9: route 'users.create' overlaps route 'users.get' (line 5): both match GET /api/users/{int}"),
        (GOOD.replace("routes:", "routes:\n  - {id: a, path: /x}\n  - {id: b, path: /x}"),
         "m.yaml:6: route 'b' overlaps route 'a' (line 5): both match every method /x"),
        ("version: 1\ndefaults: {owner: nobody}\n", "m.yaml:2: defaults.owner: Input should be 'legacy' or 'new'"),
        ("version: 1\nroutes:\n  - {id: a}\n", "m.yaml:3: routes[0].path: required key is missing"),
        (GOOD + "    shadow: {sample: 0.5}\n", "m.yaml:12: route 'users.create' shadows POST, which writes: add 'unsafe: rollback'"),
        (GOOD + "    shadow: {sample: 1.5}\n", "m.yaml:12: routes[1].shadow.sample: Input should be less than or equal to 1"),
        (GOOD + "    shadow: {sample: 0.5, unsafe: yes}\n", "m.yaml:12: routes[1].shadow.unsafe: Input should be 'off' or 'rollback'"),
        (GOOD + "    shadow: {sampel: 0.5}\n", "m.yaml:12: unknown key 'sampel' in routes[1].shadow"),
        (GOOD + "    cutover: {min_samples: 0}\n", "m.yaml:12: routes[1].cutover.min_samples: Input should be greater than or equal to 1"),
    ],
)
def test_each_kind_of_broken_map_names_file_and_line(text: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(text)), problems(text)


def test_methods_split_on_one_path_is_not_an_overlap() -> None:
    parse_map(GOOD.replace("path: /api/users\n", "path: /api/users/<int:user_id>\n"))


def test_load_map_reports_missing_unreadable_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(MapError, match="map file not found"):
        load_map(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"version: 1\n# \xff\n")
    with pytest.raises(MapError, match=r"bad.yaml:2: map file is not valid UTF-8"):
        load_map(bad)


def test_huge_map_is_rejected_without_parsing() -> None:
    with pytest.raises(MapError, match="larger than"):
        parse_map("#" * (MAX_MAP_BYTES + 1))


def test_shipped_map_is_valid() -> None:
    shipped = Path(__file__).resolve().parents[2] / "migration_map.yaml"
    loaded = load_map(shipped)
    assert {r.id for r in loaded.map.routes} >= {"users.get", "users.list"}


def test_shadow_rules_merge_defaults_with_the_route() -> None:
    loaded = parse_map(GOOD.replace("defaults:\n  owner: legacy", "defaults:\n  owner: legacy\n  shadow: {sample: 0.2, ignore: [headers.date]}")
                       + "    shadow: {unsafe: rollback, ignore: [body.id], timeout_ms: 50}\n")
    get, create = (loaded.map.shadow_of(r) for r in loaded.map.routes)
    assert (get.sample, get.ignore, get.timeout_ms, get.shadows("GET"), get.shadows("POST")) == (0.2, ("headers.date",), 2000, True, False)
    assert (create.ignore, create.timeout_ms, create.shadows("POST")) == (("headers.date", "body.id"), 50, True)
    assert create.redact == ()  # what the map adds; the redactor hides password, token ... always


def test_writes_may_be_shadowed_with_rollback() -> None:
    parse_map(GOOD + "    shadow: {sample: 0.5, unsafe: rollback}\n")


def test_yaml_1_1_words_are_not_booleans() -> None:
    # `on` as a key and `off` as a value mean what they say, not True and False
    loaded = parse_map(GOOD + "    shadow: {sample: 0}\n  - id: f\n    path: /f\n    methods: [GET]\n"
                       "    owner: new\n    fallback: {on: [5xx, timeout]}\n    shadow: {unsafe: off}\n")
    entry = loaded.map.routes[2]
    assert entry.fallback is not None and [o.value for o in entry.fallback.on] == ["5xx", "timeout"]
    assert loaded.map.shadow_of(entry).unsafe.value == "off"
    assert parse_map("version: 1\ndefaults: {shadow: {sample: 0}}\n").map.version == 1


@pytest.mark.parametrize(
    ("canary", "guard", "expected"),
    [
        ("{percent: 10, steps: [50, 100]}", "", "canary steps advance only on a guard's verdict; add a guard"),
        ("{percent: 10, steps: [50, 25]}", "{}", "must be rising percentages between 1 and 100"),
        ("{percent: 50, steps: [50, 100]}", "{}", "canary steps must start above percent 50"),
        ("{percent: 10.5}", "", "Input should be a valid integer"),
        ("{percent: 10, sticky: [header]}", "", "unknown sticky key 'header'"),
    ],
)
def test_bad_canaries_are_refused_with_their_line(canary: str, guard: str, expected: str) -> None:
    text = f"version: 1\nroutes:\n  - id: c\n    path: /c\n    methods: [GET]\n    canary: {canary}\n"
    if guard:
        text += f"    guard: {guard}\n"
    found = problems(text)
    assert any(p.startswith("m.yaml:6: ") and expected in p for p in found), found


def test_canary_on_a_new_owned_route_is_refused() -> None:
    text = "version: 1\nroutes:\n  - {id: c, path: /c, owner: new, canary: {percent: 5}}\n"
    assert any("has a canary but owner: new" in p for p in problems(text))


RICH = """\
# anchors, aliases, flow and block styles, quoting, comments, a document start
---
version: 1
defaults: &defaults
  owner: legacy
  shadow: {sample: 0.0, ignore: [headers.date, 'body."quoted"']}
routes:
  - id: "a.get"
    path: '/a/<int:id>'
    methods: [GET, HEAD]
    owner: new
    shadow: &rules
      sample: 0.5
      ignore: [body.updated_at]
  - {id: b, path: /b, methods: [get], shadow: *rules}
  - id: c
    path: /c
    fallback: {on: [5xx, timeout]}
    shadow: {unsafe: off, sample: 0}
"""


def test_both_parsers_read_a_map_alike(monkeypatch: pytest.MonkeyPatch, yaml_parser: str) -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    read = {}
    for fast in (True, False):
        monkeypatch.setattr(map_text, "LIBYAML", fast)
        composed = map_text.compose(RICH)
        read[fast] = (composed.data, composed.lines, parse_map(RICH, "m.yaml").lines)
    assert read[True] == read[False]
    data, lines, route_lines = read[True]
    assert data["routes"][1]["shadow"] == {"sample": 0.5, "ignore": ["body.updated_at"]}
    assert data["routes"][2]["fallback"] == {"on": ["5xx", "timeout"]}  # YAML 1.2: `on` is a word
    assert route_lines == (8, 15, 16)
    # a value under an alias has the line of the anchored value it stands for
    assert lines[("routes", 1, "shadow", "sample")] == 13


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nroutes: *nowhere\n", "m.yaml:2: invalid YAML: found undefined alias 'nowhere'"),
        ("version: &v 1\nroutes: &v []\n", "m.yaml:2: invalid YAML: anchor 'v' is defined twice (first at line 1)"),
        ("version: 1\n---\nroutes: []\n",
         "m.yaml:2: invalid YAML: a map is one YAML document, but a second one starts here"),
        ("version: 1\nroutes:\n  - <<: {id: a}\n    path: /a\n",
         "m.yaml:3: invalid YAML: merge keys (<<) are not supported; write the keys out"),
        ("version: 1\nroutes: []\nx: !!python/name:os.system ''\n",
         "m.yaml:3: invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"),
        ("version: 1\nroutes: [" + "[" * 40 + "]" * 40 + "]\n",
         "m.yaml:2: the map nests deeper than 32 levels (an alias that contains itself?)"),
    ],
)
def test_yaml_structure_errors_name_their_line(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_an_alias_key_and_aliased_values_count_as_written() -> None:
    loaded = parse_map("version: 1\nroutes:\n  - &r {id: a, path: /a}\nx: 1\n".replace("x: 1\n", ""))
    assert loaded.lines == (3,)
    composed = map_text.compose("k: &k name\n*k : 2\nlist: &l [1, 2]\nagain: *l\n")
    assert composed.data == {"k": "name", "name": 2, "list": [1, 2], "again": [1, 2]}
    assert composed.lines[("again", 1)] == 3  # the item's own line, under the anchor


def test_every_error_of_a_large_map_names_its_line(yaml_parser: str) -> None:
    n = 10_000 if yaml_parser == "libyaml" else 1_000  # the pure parser takes seconds for 10,000
    entries = [f"  - {{id: r{i}, path: '/r{i}/<int:id>', methods: [GET]}}" for i in range(n)]
    entries[-2] = f"  - {{id: r{n - 2}, path: '/r{n - 2}/<intt:id>', methods: [GET]}}"
    entries[-1] = f"  - {{id: r{n - 1}, path: /r{n - 1}, methods: [GET], ownr: new}}"
    found = problems("version: 1\nroutes:\n" + "\n".join(entries) + "\n")
    assert found == [f"m.yaml:{n + 2}: unknown key 'ownr' in routes[{n - 1}]"]  # schema errors come first
    entries[-1] = f"  - {{id: r{n - 1}, path: /r{n - 1}, methods: [GET]}}"
    found = problems("version: 1\nroutes:\n" + "\n".join(entries) + "\n")
    assert found == [
        f"m.yaml:{n + 1}: routes[{n - 2}].path: path '/r{n - 2}/<intt:id>': unknown converter 'intt' "
        "(known: int, float, uuid, string, path)"
    ]


def test_parsing_leaves_the_garbage_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    parse_map(GOOD)
    assert gc.isenabled()
    problems("version: 1\nroutes: [\n")
    assert gc.isenabled()
    gc.disable()  # an application that manages the collector itself keeps it off
    try:
        parse_map(GOOD)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_what_a_large_parse_built_skips_the_young_collections_and_joins_only_our_frozen_heap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    large = "version: 1\nroutes:\n" + "".join(
        f"  - {{id: r{i}, path: '/r{i}/<int:id>', methods: [GET], owner: new}}\n" for i in range(3000)
    )
    gc.collect()
    parse_map(large)
    # the parse's objects went to the oldest generation unscanned: no young collection ran
    # (each would have counted one for the middle generation)
    assert gc.get_count()[1] == 0
    for freeze in (map_loader.freeze_heap, gc.freeze):  # the gateway's own freeze, or an app's
        freeze()
        try:
            frozen = gc.get_freeze_count()
            asked = count_calls(monkeypatch, frozen)
            kept = parse_map(large)
            monkeypatch.undo()
            if freeze is gc.freeze:
                # an app's frozen heap is not ours: not thawed, nor grown, by the parse (a few
                # frozen objects may have been freed since), and asked after with a walk
                assert frozen - 100 <= gc.get_freeze_count() <= frozen and asked
            else:
                # a gateway server's: what the parse built joins it, unscanned, so that no young
                # collection right after a reload's swap walks the new table with the GIL held
                assert gc.get_freeze_count() > frozen + 10_000 and not asked
                assert gc.get_count()[0] < gc.get_threshold()[0]
            del kept
        finally:
            map_loader.unfreeze_heap()


def count_calls(monkeypatch: pytest.MonkeyPatch, frozen: int) -> list[int]:
    asked: list[int] = []

    def get_freeze_count() -> int:
        asked.append(1)
        return frozen

    monkeypatch.setattr(gc, "get_freeze_count", get_freeze_count)
    return asked


def test_a_reload_reuses_parsed_paths_and_still_refuses_bad_ones() -> None:
    first = parse_map(GOOD)
    again = parse_map(GOOD.replace("owner: new", "owner: legacy"))
    assert again.templates[0] is first.templates[0]
    for _ in range(2):  # a refused path is not remembered as good
        assert any("unknown converter 'intt'" in p for p in problems(GOOD.replace("<int:", "<intt:")))
