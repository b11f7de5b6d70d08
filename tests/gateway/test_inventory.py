"""Which app endpoints a map entry routes to: a static entry under a templated rule is covered
when the rule's converters take the entry's text, as the framework would route it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from flask import Flask

from gateway.cli import main
from gateway.inventory import covers
from gateway.paths import parse_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("rule", "entry", "expected"),
    [
        ("/api/users/<int:user_id>", "/api/users/1", True),
        ("/api/users/<int:user_id>", "/api/users/abc", False),  # int takes digits only
        ("/api/users/<int:user_id>", "/api/users/-1", False),
        ("/api/users/<int:user_id>", "/api/users/1/posts", False),
        ("/api/users/<int:user_id>", "/api/users", False),
        ("/api/users/<int:user_id>", "/api/users/", False),
        ("/api/users/{user_id}", "/api/users/abc", True),  # FastAPI: a string in the path
        ("/api/users/{user_id:int}", "/api/users/abc", False),
        ("/items/<float:x>", "/items/1.5", True),
        ("/items/<float:x>", "/items/1", False),
        ("/ids/<uuid:u>", "/ids/00000000-0000-4000-8000-000000000000", True),
        ("/ids/<uuid:u>", "/ids/1", False),
        ("/bench/<variant>/items/<int:item_id>", "/bench/native/items/<int:item_id>", True),
        ("/bench/<variant>/items/<int:item_id>", "/bench/native/items/{item_id}", True),
        ("/bench/<variant>/echo", "/bench/native/echo", True),
        ("/bench/<variant>/echo", "/bench/native/other", False),
        ("/reports/<name>.csv", "/reports/june.csv", True),
        ("/reports/<name>.csv", "/reports/june.txt", False),
        ("/files/<path:p>", "/files/a/b/c.txt", True),
        ("/files/<path:p>", "/files/<int:n>/raw", True),
        ("/files/<path:p>", "/files", False),
        ("/files/<path:p>/raw", "/files/a/b/raw", True),
        ("/files/<path:p>/raw", "/files/a/b/cooked", False),
        ("/x/<a>", "/x/<a>.csv", True),  # a string takes any one segment
        ("/x/<int:a>", "/x/<a>.csv", False),
        ("/x/static", "/x/<a>", False),  # the entry matches URLs the rule does not serve
        ("/api/users/<int:user_id>", "/api/users/<user_id>", True),  # loose shape, as before
    ],
)
def test_a_rule_covers_the_entries_whose_urls_it_serves(rule: str, entry: str, expected: bool) -> None:
    assert covers(parse_template(rule), parse_template(entry)) is expected


def legacy_app() -> Flask:
    app = Flask(__name__, static_folder=None)
    app.add_url_rule("/api/users/<int:user_id>", "users.get", lambda **_: "", methods=["GET"])
    app.add_url_rule("/api/<kind>/export", "export", lambda **_: "", methods=["POST"])
    return app


def native_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/users/{user_id:int}")
    async def get_user(user_id: int) -> dict[str, Any]:
        return {}

    return app


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


@pytest.fixture
def apps(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{__name__}:legacy_app")
    monkeypatch.setenv("GATEWAY_NATIVE_APP", f"{__name__}:native_app")
    monkeypatch.chdir(tmp_path)


def test_check_map_takes_static_entries_under_templated_rules(
    apps: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nroutes:\n"
        "  - {id: users.one, path: /api/users/1, methods: [GET], owner: new}\n"
        "  - {id: users.any, path: '/api/users/<int:user_id>', methods: [GET]}\n"
        "  - {id: export.orders, path: /api/orders/export, methods: [POST]}\n"
    )
    assert main(["check-map", str(path)]) == 0
    out, err = capsys.readouterr()
    assert (out.split(":")[0], err) == ("ok", "")


def test_check_map_honours_the_rule_s_converter(
    apps: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\nroutes:\n  - {id: users.me, path: /api/users/me, methods: [GET]}\n")
    assert main(["check-map", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"{path}:3: error: route 'users.me' (GET /api/users/me) matches no endpoint: "
        "no legacy URL rule and no native route has this path and method\n"
    )


def test_check_map_passes_the_bench_map(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # bench_map.yaml's entries are static where bench/apps.py's rules take <variant> and ids
    monkeypatch.setenv("GATEWAY_LEGACY_APP", "bench.apps:legacy_app")
    monkeypatch.setenv("GATEWAY_NATIVE_APP", "bench.apps:native_app")
    monkeypatch.chdir(ROOT)
    code = main(["check-map", "bench/bench_map.yaml"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    assert out.startswith("ok: bench/bench_map.yaml: ")
