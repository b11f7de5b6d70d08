"""The `gateway` command, driven through `main([...])` and, for a few cases, the installed script.

The apps are the fakes in tests/gateway/fake_apps.py, chosen with GATEWAY_LEGACY_APP and
GATEWAY_NATIVE_APP as a user would; the last tests run against the bundled demo apps.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gateway import loading
from gateway.cli import main
from gateway.map_loader import parse_map
from tests.gateway import fake_apps

ROOT = Path(__file__).resolve().parents[2]
FAKES = "tests.gateway.fake_apps"

# lines: items.list 5, items.create 9, items.get 12, items.change 16
GOOD = """\
version: 1
defaults:
  owner: legacy
routes:
  - id: items.list
    path: /api/items
    methods: [GET]
    owner: new
  - id: items.create
    path: /api/items
    methods: [POST]
  - id: items.get
    path: /api/items/{item_id}
    methods: [GET]
    owner: new
  - id: items.change
    path: /api/items/<int:item_id>
    methods: [PUT, PATCH]
    owner: legacy
"""


@pytest.fixture(autouse=True)
def fake_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{FAKES}:create_legacy")
    monkeypatch.setenv("GATEWAY_NATIVE_APP", f"{FAKES}:create_native")
    monkeypatch.chdir(tmp_path)
    # every app command puts its directory first on sys.path: each test gets the path back
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(loading, "_app_dir", [])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- check-map -------------------------------------------------------------------------------

def test_check_map_accepts_a_good_map_and_names_its_hash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    code, out, err = run(capsys, "check-map", str(path))
    sha = hashlib.sha256(GOOD.encode()).hexdigest()[:12]
    assert (code, out, err) == (0, f"ok: {path}: 4 routes, sha256 {sha}\n", "")


def test_check_map_finds_the_map_by_flag_env_and_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    flagged = write(tmp_path, GOOD, "flagged.yaml")
    assert run(capsys, "check-map", "--map", str(flagged))[1].startswith(f"ok: {flagged}:")
    write(tmp_path, GOOD, "migration_map.yaml")
    assert run(capsys, "check-map")[1].startswith("ok: migration_map.yaml:")
    from_env = write(tmp_path, GOOD, "env.yaml")
    monkeypatch.setenv("GATEWAY_MAP_PATH", str(from_env))
    assert run(capsys, "check-map")[1].startswith(f"ok: {from_env}:")
    code, _, err = run(capsys, "check-map", str(flagged), "--map", str(flagged))
    assert code == 2 and "give the map once" in err


BROKEN = [
    pytest.param("version: 1\nroutes: [\n", 3, "invalid YAML", id="invalid-yaml"),
    pytest.param(GOOD.replace("    owner: new\n", "    ownr: new\n", 1), 8, "unknown key 'ownr' in routes[0]",
                 id="unknown-key"),
    pytest.param(GOOD.replace("path: /api/items\n", "path: [api, items]\n", 1), 6,
                 "routes[0].path: Input should be a valid string", id="wrong-type"),
    pytest.param(GOOD.replace("    methods: [POST]\n", "    methods: [POST]\n    methods: [GET]\n"), 12,
                 "duplicate key 'methods'", id="duplicate-yaml-key"),
    pytest.param(GOOD.replace("id: items.change", "id: items.list"), 16,
                 "duplicate route id 'items.list' (first defined at line 5)", id="duplicate-id"),
    pytest.param(GOOD.replace("<int:item_id>", "<intt:item_id>"), 17,
                 "routes[3].path: path '/api/items/<intt:item_id>': unknown converter 'intt'", id="bad-converter"),
    pytest.param(GOOD.replace("{item_id}", "{item_id:int}").replace("[PUT, PATCH]", "[GET, PUT]"), 16,
                 "route 'items.change' overlaps route 'items.get' (line 12): both match GET /api/items/{int}",
                 id="overlap"),
    pytest.param(GOOD.replace("    owner: legacy\n", "    owner: new\n"), 16,
                 "route 'items.change' is owner: new but no native route implements PUT, PATCH "
                 "/api/items/<int:item_id>", id="new-without-native-route"),
    pytest.param(GOOD + "  - id: nowhere\n    path: /nowhere/<int:n>\n    methods: [GET]\n", 20,
                 "route 'nowhere' (GET /nowhere/<int:n>) matches no endpoint", id="no-endpoint"),
]


@pytest.mark.parametrize(("text", "line", "message"), BROKEN)
def test_check_map_rejects_each_kind_of_broken_map_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, message: str
) -> None:
    path = write(tmp_path, text)
    code, out, err = run(capsys, "check-map", str(path))
    assert code == 1, err
    assert out == ""
    assert f"{path}:{line}: error: {message}" in err, err
    assert "Traceback" not in err


def test_owner_new_is_checked_per_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # native has GET /api/items/{item_id} but not PATCH: only PATCH is reported
    path = write(tmp_path, GOOD.replace("[PUT, PATCH]", "[PATCH]").replace("    owner: legacy\n", "    owner: new\n"))
    code, _, err = run(capsys, "check-map", str(path))
    assert code == 1
    assert "no native route implements PATCH /api/items" in err
    # with GET split off to native and PATCH back on legacy the same paths pass
    assert run(capsys, "check-map", str(write(tmp_path, GOOD, "ok.yaml")))[0] == 0


def test_legacy_owned_entry_without_a_legacy_rule_is_a_warning_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD + "  - id: native.only\n    path: /native-only\n    methods: [GET]\n")
    code, out, err = run(capsys, "check-map", str(path))
    assert code == 0
    assert out.startswith("ok:")
    assert f"{path}:20: warning: route 'native.only' is owner: legacy but no legacy rule implements GET" in err


def test_no_apps_checks_the_file_only(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_LEGACY_APP", "nope.nothing:app")
    path = write(tmp_path, GOOD + "  - id: nowhere\n    path: /nowhere\n")
    code, out, _ = run(capsys, "check-map", "--no-apps", str(path))
    assert code == 0 and out.startswith(f"ok: {path}: 5 routes")
    code, _, err = run(capsys, "check-map", str(tmp_path / "missing.yaml"))
    assert code == 1 and f"{tmp_path / 'missing.yaml'}: error: map file not found" in err


def test_middleware_wrapped_legacy_app_is_unwrapped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{FAKES}:wrapped_legacy")
    assert run(capsys, "check-map", str(write(tmp_path, GOOD)))[0] == 0


@pytest.mark.parametrize(
    ("variable", "spec", "expected"),
    [
        ("GATEWAY_LEGACY_APP", "nope.nothing:app", "cannot import module 'nope.nothing'"),
        ("GATEWAY_LEGACY_APP", f"{FAKES}:missing", "has no attribute 'missing'"),
        ("GATEWAY_LEGACY_APP", "no-colon-here", "expected an import string like 'package.module:app'"),
        ("GATEWAY_LEGACY_APP", f"{FAKES}:broken_factory", "RuntimeError: the database is on fire"),
        ("GATEWAY_LEGACY_APP", f"{FAKES}:plain_wsgi", "tests.gateway.fake_apps.plain_wsgi has no Flask-style url_map"),
        ("GATEWAY_NATIVE_APP", f"{FAKES}:create_legacy", "has no Starlette-style .routes"),
    ],
)
def test_an_app_that_cannot_be_loaded_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    variable: str, spec: str, expected: str,
) -> None:
    monkeypatch.setenv(variable, spec)
    path = write(tmp_path, GOOD)
    for argv in (["check-map", str(path)], ["routes", "--map", str(path)], ["init-map"]):
        if variable == "GATEWAY_NATIVE_APP" and argv == ["init-map"]:
            continue  # init-map reads the legacy app only
        code, out, err = run(capsys, *argv)
        assert code == 2, (argv, err)
        assert out == ""
        assert expected in err
        assert err.count("\n") == 1 and err.startswith(f"gateway {argv[0]}: error: ")


def test_invalid_settings_are_named_by_their_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_SHUTDOWN_TIMEOUT", "-1")
    code, _, err = run(capsys, "check-map", str(write(tmp_path, GOOD)))
    assert code == 2 and "GATEWAY_SHUTDOWN_TIMEOUT" in err and err.count("\n") == 1


# --- routes ----------------------------------------------------------------------------------

def table_rows(out: str) -> dict[tuple[str, str], list[str]]:
    """Cells cut at the header's column starts (a path may contain a space)."""
    lines = out.splitlines()
    header = lines[0]
    names = header.split()
    assert names == ["METHOD", "PATH", "LEGACY", "NATIVE", "ENTRY", "OWNER", "NOTE"]
    starts = [header.index(n) for n in names] + [None]
    rows = {}
    for line in lines[1:]:
        if not line.strip():
            break
        cells = [line[a:b].strip() for a, b in itertools.pairwise(starts)]
        rows[(cells[0], cells[1])] = cells[2:]
    return rows


def test_routes_lists_both_sides_with_owner_and_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    code, out, err = run(capsys, "routes", "--map", str(path))
    assert (code, err) == (0, "")
    rows = table_rows(out)
    assert rows[("GET", "/api/items")][:4] == ["y", "y", "items.list", "new"]
    assert rows[("POST", "/api/items")][:4] == ["y", "y", "items.create", "legacy"]
    # Flask types the parameter in the path, FastAPI in the signature: one row
    assert rows[("GET", "/api/items/<int:item_id>")][:4] == ["y", "y", "items.get", "new"]
    assert rows[("PATCH", "/api/items/<int:item_id>")][:4] == ["y", "n", "items.change", "legacy"]
    assert rows[("GET", "/healthz")][:4] == ["y", "n", "-", "legacy"]
    assert rows[("GET", "/native-only")][:4] == ["n", "y", "-", "legacy"]
    assert rows[("*", "/assets/{path:path}")][:2] == ["n", "y"]
    assert rows[("GET", "/v2/things/{thing_id}")][:2] == ["n", "y"]  # inside a mounted sub-app
    assert rows[("*", "/any-method")][:2] == ["n", "y"]
    assert rows[("GET", "/pages/<any(about, help):page>")][-1] == "converter 'any' read as string"
    assert ("GET", "/ws") not in rows  # websockets are not HTTP endpoints
    assert out.rstrip().splitlines()[-1].startswith("2 of 10 endpoints served natively")


def test_progress_counts_only_new_owned_legacy_endpoints_with_a_native_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flipped = GOOD.replace("    methods: [POST]\n", "    methods: [POST]\n    owner: new\n")
    assert "3 of 10 endpoints served natively" in run(capsys, "routes", "--map", str(write(tmp_path, flipped)))[1]
    # owner: new where native has no route (PUT, PATCH) does not count as migrated
    unimplemented = GOOD.replace("    owner: legacy\n", "    owner: new\n")
    assert "2 of 10 endpoints" in run(capsys, "routes", "--map", str(write(tmp_path, unimplemented, "u.yaml")))[1]
    everything_new = "version: 1\ndefaults: {owner: new}\n"
    assert "3 of 10 endpoints" in run(capsys, "routes", "--map", str(write(tmp_path, everything_new, "n.yaml")))[1]


def test_routes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a wider entry (a string where the app has static segments) owns /dup/a by lookup, as the gateway would
    text = GOOD + "  - id: dup.any\n    path: /dup/<name>\n    owner: new\n"
    code, out, _ = run(capsys, "routes", "--json", "--map", str(write(tmp_path, text)))
    assert code == 0
    report = json.loads(out)
    assert report["progress"] == {"native": 2, "total": 10}
    assert report["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    by_key = {(e["method"], e["path"]): e for e in report["endpoints"]}
    got = by_key[("GET", "/api/items/<int:item_id>")]
    assert got["native_path"] == "/api/items/{item_id}"
    assert (got["entry"], got["line"], got["owner"], got["served_natively"]) == ("items.get", 12, "new", True)
    assert (by_key[("GET", "/dup/a")]["entry"], by_key[("GET", "/dup/a")]["owner"]) == ("dup.any", "new")
    assert by_key[("GET", "/colors/<color:name>")]["notes"] == ["converter 'color' read as string"]
    assert by_key[("GET", "/healthz")]["entry"] is None


def test_an_endpoint_pairs_with_the_entry_of_its_exact_shape_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = """\
version: 1
routes:
  - {id: by_text, path: '/api/items/<item_id>', methods: [GET], owner: legacy}
  - {id: by_number, path: '/api/items/<int:item_id>', methods: [GET], owner: new}
"""
    report = json.loads(run(capsys, "routes", "--json", "--map", str(write(tmp_path, text)))[1])
    row = next(e for e in report["endpoints"] if (e["method"], e["path"]) == ("GET", "/api/items/<int:item_id>"))
    assert (row["entry"], row["owner"]) == ("by_number", "new")


# --- init-map --------------------------------------------------------------------------------

def test_init_map_writes_a_valid_map_of_every_legacy_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "init-map")
    assert code == 0
    loaded = parse_map(out)
    entries = {r.id: r for r in loaded.map.routes}
    assert list(entries) == [
        "items.list", "items.create", "items.get", "items.change", "pages.page", "colors.get",
        "dup", "dup-2", "health_check_",
    ]
    assert all(loaded.map.owner_of(r).value == "legacy" for r in loaded.map.routes)
    assert entries["items.change"].methods == ("PUT", "PATCH")
    assert entries["items.get"].path == "/api/items/<int:item_id>"
    # the unknown converter becomes a plain parameter, and the file says so
    assert entries["pages.page"].path == "/pages/<page>"
    assert "# /pages/<any(about, help):page>: converter 'any' read as string" in out


def test_init_map_says_on_stderr_which_converters_it_read_as_string(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "init-map")
    assert code == 0 and parse_map(out).map.routes
    assert err == (
        "gateway init-map: note: converter 'any', 'color' is not one the map knows (int, float, "
        "uuid, string, path): its parameters are written as plain string parameters, which match "
        "any one path segment; the legacy app still applies its own converter\n"
    )


def test_init_map_keeps_subdomain_rules_in_order_and_says_the_map_cannot_tell_hosts_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{FAKES}:create_subdomain_legacy")
    target = tmp_path / "m.yaml"
    code, _, err = run(capsys, "init-map", "-o", str(target))
    out = target.read_text()
    assert code == 0
    assert [(r.id, r.path) for r in parse_map(out).map.routes] == [
        ("api_users", "/users"), ("tenant_profile", "/profile"), ("about", "/about"),
    ]
    assert "# api_users: the app serves /users on subdomain 'api' only; this entry covers it on every host" in out
    assert ("# site_users: GET /users on the app's default host shares the entry 'api_users': "
            "the map routes by path only, not by host") in out
    assert "# tenant_profile: the app serves /profile on subdomain '<tenant>' only" in out
    assert "about: the app serves" not in out  # the default subdomain is every host the app has
    assert ("gateway init-map: note: 3 rule(s) are limited to a subdomain or host (api_users, "
            "site_users, tenant_profile): the map routes by method and path only, so each entry "
            "covers its path on every host; keep those owner: legacy, or serve every host from the "
            "native route (see the comments in the map)\n") in err
    assert run(capsys, "check-map", str(target))[0] == 0


def test_routes_shows_one_row_per_path_naming_every_host_the_legacy_app_tells_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{FAKES}:create_subdomain_legacy")
    empty = write(tmp_path, "version: 1\nroutes: []\n")
    report = json.loads(run(capsys, "routes", "--json", "--map", str(empty))[1])
    notes = {e["path"]: e["notes"] for e in report["endpoints"] if e["legacy"]}
    assert notes == {
        "/about": [],
        "/profile": ["legacy serves it by host: subdomain '<tenant>'"],
        "/users": ["legacy serves it by host: subdomain 'api' + default host"],
    }


def test_check_map_warns_when_a_host_bound_rule_goes_native(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{FAKES}:create_host_legacy")
    code, out, _ = run(capsys, "init-map")
    assert code == 0 and [r.id for r in parse_map(out).map.routes] == ["a_index", "tenant_item"]
    assert "# b_index: GET / on host 'b.example.test' shares the entry 'a_index'" in out
    path = write(tmp_path, out.replace("methods: [GET]\n    owner: legacy", "methods: [GET]\n    owner: new", 1))
    line = out.splitlines().index("  - id: a_index") + 1
    code, _, err = run(capsys, "check-map", str(path))
    assert (
        f"{path}:{line}: warning: route 'a_index' sends / to the native side on every host, but the "
        "legacy app serves it by host (host 'a.example.test', host 'b.example.test'): the map "
        "routes by method and path only, so the native route must answer for every host (or keep "
        "the entry owner: legacy)"
    ) in err


def test_init_map_output_passes_check_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "generated.yaml"
    code, out, err = run(capsys, "init-map", "--output", str(target))
    assert (code, out) == (0, "")
    assert f"wrote {target}: 9 routes" in err
    assert run(capsys, "check-map", str(target))[0] == 0


def test_init_map_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = write(tmp_path, "precious: true\n", "migration_map.yaml")
    code, out, err = run(capsys, "init-map", "-o", str(target))
    assert (code, out) == (1, "")
    assert f"{target} already exists" in err and "--force" in err
    assert target.read_text() == "precious: true\n"
    assert run(capsys, "init-map", "-o", str(target), "--force")[0] == 0
    assert parse_map(target.read_text()).map.routes


def test_init_map_keeps_a_valid_map_when_rules_shadow_each_other_or_cannot_be_read(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{FAKES}:create_tricky_legacy")
    code, out, _ = run(capsys, "init-map")
    assert code == 0
    routes = parse_map(out).map.routes
    assert [(r.id, r.methods) for r in routes] == [("first", ("GET",)), ("second", ("POST",))]
    assert "# second: GET /x/<b> is already served by the rule of 'first'" in out
    assert "# skipped files GET /files/<path:p>/<name>" in out


# --- explain ---------------------------------------------------------------------------------

def test_explain_names_the_entry_and_the_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    code, out, _ = run(capsys, "explain", "GET", "/api/items/5?verbose=1#top", "--map", str(path))
    assert code == 0
    assert out.splitlines()[:5] == [
        "GET /api/items/5",
        f"  entry:     items.get ({path}:12)",
        "  path:      /api/items/{item_id}",
        "  methods:   GET",
        "  served by: new",
    ]
    assert "PUT -> items.change (legacy)" in out


def test_explain_one_path_split_by_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    get = run(capsys, "explain", "get", "http://localhost:8000/api/items?page=2", "--map", str(path))[1]
    post = run(capsys, "explain", "POST", "/api/items", "--map", str(path))[1]
    assert "entry:     items.list" in get and "served by: new" in get
    assert "entry:     items.create" in post and "served by: legacy" in post
    assert "other methods on this path: GET -> items.list (new)" in post


def test_explain_unmapped_path_goes_to_the_default_owner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    out = run(capsys, "explain", "GET", "/healthz", "--map", str(path))[1]
    assert "entry:     none matches" in out and "served by: legacy (defaults.owner)" in out
    new_default = write(tmp_path, GOOD.replace("owner: legacy\nroutes", "owner: new\nroutes"), "n.yaml")
    assert "served by: new (defaults.owner)" in run(capsys, "explain", "GET", "/healthz", "--map", str(new_default))[1]
    code, _, err = run(capsys, "explain", "GET", "healthz", "--map", str(path))
    assert code == 2 and "PATH must start with '/'" in err


# --- serve and seed --------------------------------------------------------------------------

@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setenv("GATEWAY_MAP_PATH", "restored-after-the-test")  # serve exports it
    return calls


def test_serve_validates_the_map_then_runs_uvicorn_with_the_map_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    uvicorn_calls: list[tuple[tuple[Any, ...], dict[str, Any]]],
) -> None:
    write(tmp_path, GOOD, "relative.yaml")
    monkeypatch.setenv("GATEWAY_SHUTDOWN_TIMEOUT", "2.5")
    code = main(["serve", "--map", "relative.yaml", "--port", "9123", "--workers", "3", "--log-level", "warning"])
    assert code == 0
    assert uvicorn_calls == [(("gateway.app:create_app",), {
        "factory": True, "host": "127.0.0.1", "port": 9123, "workers": 3,
        "timeout_graceful_shutdown": 3, "log_level": "warning", "access_log": False,
    })]
    assert os.environ["GATEWAY_MAP_PATH"] == str(tmp_path / "relative.yaml")
    # several workers shared their metrics through a directory made for the run, gone after it
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    made = Path(capsys.readouterr().err.split("add up their values in ", 1)[1].split(" (", 1)[0])
    assert made.name.startswith("gateway-metrics-") and not made.exists()


def test_serve_never_starts_on_a_bad_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    uvicorn_calls: list[tuple[tuple[Any, ...], dict[str, Any]]],
) -> None:
    path = write(tmp_path, GOOD.replace("owner: new", "owner: newest", 1))
    code, _, err = run(capsys, "serve", "--map", str(path))
    assert code == 1
    assert f"{path}:8: error: routes[0].owner" in err
    assert uvicorn_calls == []
    assert run(capsys, "serve", "--workers", "0")[0] == 2


def test_seed_calls_the_configured_function(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_SEED", f"{FAKES}:fake_seed")
    monkeypatch.setattr(fake_apps, "SEED_CALLS", [])
    assert run(capsys, "seed", "--database-url", "sqlite:///x.db") == (
        0, "seeded the database: 7 users created\n", ""
    )
    code, out, _ = run(capsys, "seed", "--if-empty")
    assert code == 0 and "0 users created" in out
    assert fake_apps.SEED_CALLS == [("sqlite:///x.db", False), (None, True)]


@pytest.mark.parametrize(
    ("spec", "code", "expected"),
    [
        (f"{FAKES}:failing_seed", 1, "seed failed: RuntimeError: the database already has users"),
        ("nope.seed:seed", 2, "cannot load the seed function (set GATEWAY_SEED)"),
        (f"{FAKES}:SEED_CALLS", 2, "is not a function"),
    ],
)
def test_seed_failures_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, spec: str, code: int, expected: str
) -> None:
    monkeypatch.setenv("GATEWAY_SEED", spec)
    got, out, err = run(capsys, "seed")
    assert (got, out) == (code, "")
    assert expected in err and err.count("\n") == 1


def test_usage_errors_and_help_return_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["bogus"]) == 2
    assert main(["--help"]) == 0
    assert "check-map" in capsys.readouterr().out


# --- the installed command -------------------------------------------------------------------

def script_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return {**env, "PYTHONPATH": str(ROOT), "GATEWAY_LEGACY_APP": f"{FAKES}:create_legacy",
            "GATEWAY_NATIVE_APP": f"{FAKES}:create_native", **extra}


def test_console_script_checks_a_map(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "gateway"
    path = write(tmp_path, GOOD)
    done = subprocess.run([str(script), "check-map", str(path)], env=script_env(tmp_path),
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {path}: 4 routes")
    broken = write(tmp_path, GOOD + "  - id: nowhere\n    path: /nowhere\n", "broken.yaml")
    done = subprocess.run([str(script), "check-map", str(broken)], env=script_env(tmp_path),
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 1
    assert f"{broken}:20: error: route 'nowhere'" in done.stderr


def test_python_dash_m_reports_a_bad_import_string_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "gateway", "routes", "--map", str(write(tmp_path, GOOD))],
                          env=script_env(tmp_path, GATEWAY_NATIVE_APP="nope.native:app"),
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("gateway routes: error: cannot load the native app (set GATEWAY_NATIVE_APP)")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


# --- the bundled demo apps -------------------------------------------------------------------

@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_LEGACY_APP")
    monkeypatch.delenv("GATEWAY_NATIVE_APP")


@pytest.mark.usefixtures("demo_env")
def test_shipped_map_passes_check_map_against_the_demo_apps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check-map", str(ROOT / "migration_map.yaml"))
    assert code == 0, err
    assert out.startswith(f"ok: {ROOT / 'migration_map.yaml'}:")


@pytest.mark.usefixtures("demo_env")
def test_demo_routes_and_init_map(capsys: pytest.CaptureFixture[str]) -> None:
    from legacy_flask.app import create_app

    code, out, _ = run(capsys, "routes", "--json", "--map", str(ROOT / "migration_map.yaml"))
    assert code == 0
    report = json.loads(out)
    by_key = {(e["method"], e["path"]): e for e in report["endpoints"]}
    users_get = by_key[("GET", "/api/users/<int:user_id>")]
    assert (users_get["entry"], users_get["served_natively"]) == ("users.get", True)
    assert by_key[("GET", "/api/orders")]["native"] is False
    rules = list(create_app().url_map.iter_rules())
    assert report["progress"]["total"] == len({
        (m, r.rule) for r in rules for m in r.methods if m not in {"HEAD", "OPTIONS"}
    })
    assert 0 < report["progress"]["native"] < report["progress"]["total"]

    code, out, _ = run(capsys, "init-map")
    assert code == 0
    assert {r.path for r in parse_map(out).map.routes} == {r.rule for r in rules}


@pytest.mark.usefixtures("demo_env")
def test_demo_seed_creates_users_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/seed.db"
    code, out, _ = run(capsys, "seed", "--database-url", url)
    assert code == 0 and int(out.split(": ")[1].split()[0]) > 0
    assert run(capsys, "seed", "--database-url", url, "--if-empty")[:2] == (
        0, "the database already has users: nothing seeded (0 users created)\n"
    )
    code, _, err = run(capsys, "seed", "--database-url", url)
    assert code == 1 and "already has users" in err
