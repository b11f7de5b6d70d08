from pathlib import Path

import pytest

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
    assert "password" in create.redact


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
