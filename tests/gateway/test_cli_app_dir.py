"""Every `gateway` command that imports an app finds it in the current directory, or in
`--app-dir DIR`, as uvicorn, gunicorn and `flask run` do; when it cannot, it says where it
looked and what to do. `gateway serve` checks that, and its store URL, before any worker starts."""

from __future__ import annotations

import importlib.metadata
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gateway import interpreter, loading
from gateway.cli import main
from tests.gateway.test_cli import GOOD, fake_env, run, uvicorn_calls, write

__all__ = ["fake_env", "uvicorn_calls"]  # the fixtures, shared with test_cli.py

LEGACY = """\
from flask import Flask

app = Flask(__name__)
app.add_url_rule("/api/items", "items.list", lambda: "[]", methods=["GET"])
"""


def legacy_module(folder: Path, source: str = LEGACY) -> str:
    """A legacy app module in `folder`, under a name no other test imported (sys.modules keeps them)."""
    name = f"mylegacy_{uuid.uuid4().hex[:8]}"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(source)
    return name


def test_the_app_is_imported_from_the_current_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = legacy_module(tmp_path)  # the tests run in tmp_path
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{name}:app")
    code, out, err = run(capsys, "routes", "--map", str(write(tmp_path, GOOD)))
    assert code == 0, err
    assert "/api/items" in out
    assert sys.path[0] == str(tmp_path)


def test_app_dir_names_another_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = legacy_module(tmp_path / "project")
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{name}:app")
    code, out, err = run(capsys, "init-map", "--app-dir", "project")
    assert code == 0, err
    assert "id: items.list" in out and sys.path[0] == str(tmp_path / "project")
    code, _, err = run(capsys, "check-map", str(write(tmp_path, GOOD)), "--app-dir", "nowhere")
    assert (code, err) == (2, "gateway check-map: error: --app-dir nowhere: no such directory\n")


def test_a_module_not_found_says_where_it_was_looked_for_and_how_to_fix_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = legacy_module(tmp_path / "project")
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{name}:app")
    code, out, err = run(capsys, "routes", "--map", str(write(tmp_path, GOOD)))
    assert (code, out) == (2, "")
    assert err == (
        f"gateway routes: error: cannot load the legacy app (set GATEWAY_LEGACY_APP): '{name}:app': "
        f"cannot import module '{name}' (searched {tmp_path} and the rest of sys.path); "
        "run from the app's directory or pass --app-dir\n"
    )


def test_a_dependency_the_app_lacks_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = legacy_module(tmp_path, "import flask_not_installed_anywhere\n")
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{name}:app")
    code, _, err = run(capsys, "init-map")
    assert code == 2
    assert err.endswith(f"cannot import module '{name}': No module named 'flask_not_installed_anywhere'\n")


REMOTE = (
    "so it cannot share one interpreter with the gateway: serve the app as it is served today "
    "(its own virtualenv, gunicorn) and point the gateway at it, "
    "GATEWAY_LEGACY_URL=http://127.0.0.1:8001 (remote mode)\n"
)


def test_an_app_written_for_an_older_python_is_pointed_to_remote_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python 3.10 dropped the collections aliases of collections.abc; old Flask apps used them
    name = legacy_module(tmp_path, "from collections import Mapping\n")
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{name}:app")
    code, _, err = run(capsys, "check-map", str(write(tmp_path, GOOD)))
    python = f"Python {sys.version_info.major}.{sys.version_info.minor}"
    assert code == 2
    assert "cannot import name 'Mapping' from 'collections'" in err
    assert err.endswith(f"; 'collections' is {python}'s own module, and the app was written for "
                        f"another Python, {REMOTE}")


def test_an_app_on_another_version_of_a_gateway_dependency_is_pointed_to_remote_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # pydantic 1's ModelField is gone in pydantic 2, which the gateway runs on (serve says the
    # same from its workers: tests/e2e/test_app_dir.py)
    name = legacy_module(tmp_path, "from pydantic.fields import ModelField\n")
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{name}:app")
    code, _, err = run(capsys, "check-map", str(write(tmp_path, GOOD)))
    assert code == 2
    version = importlib.metadata.version("pydantic")
    assert err.startswith(f"gateway check-map: error: cannot load the legacy app (set GATEWAY_LEGACY_APP): "
                          f"'{name}:app': cannot import module '{name}': "
                          "cannot import name 'ModelField' from 'pydantic.fields'")
    assert err.endswith(f"; pydantic {version} is installed for the gateway itself, and the app "
                        f"needs another version of it, {REMOTE}")


def test_an_import_error_of_the_app_s_own_libraries_is_not_called_a_conflict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # flask is the app's dependency, not the gateway's: installing the right one fixes it here
    name = legacy_module(tmp_path, "from flask import NoSuchThing\n")
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{name}:app")
    code, _, err = run(capsys, "init-map")
    assert code == 2 and "cannot import name 'NoSuchThing' from 'flask'" in err
    assert "remote mode" not in err


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (ModuleNotFoundError("No module named 'distutils'", name="distutils"),
         "'distutils' was in the standard library of an older Python"),
        (ModuleNotFoundError("No module named 'flask_sqlalchemy'", name="flask_sqlalchemy"), None),
        (ImportError("cannot import name 'x' from 'yaml'", name="yaml"), "PyYAML"),
        (ImportError("no name"), None),
    ],
)
def test_conflict_tells_an_interpreter_conflict_from_a_missing_package(
    error: ImportError, said: str | None
) -> None:
    why = interpreter.conflict(error)
    assert (why is None) if said is None else (why is not None and said in why)


def test_the_gateway_s_own_distributions_include_what_its_requirements_pull_in() -> None:
    ours = interpreter.gateway_distributions()
    assert {"fastapi", "pydantic", "starlette", "pyyaml"} <= ours  # starlette comes with fastapi
    assert "flask" not in ours and "sqlalchemy" not in ours  # demo extra only


def test_serve_puts_the_app_directory_first_and_refuses_an_app_it_cannot_find(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    uvicorn_calls: list[tuple[tuple[Any, ...], dict[str, Any]]],
) -> None:
    write(tmp_path, GOOD, "migration_map.yaml")
    name = legacy_module(tmp_path / "project")
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{name}:app")
    code, _, err = run(capsys, "serve", "--map", "migration_map.yaml")
    assert code == 2 and uvicorn_calls == []  # no worker started to fail the same way
    assert f"cannot import module '{name}' (searched {tmp_path} and the rest of sys.path)" in err
    # spawned workers start with this process's sys.path: the directory reaches them all
    seen: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.append(sys.path[0]))
    assert main(["serve", "--map", "migration_map.yaml", "--app-dir", "project", "--workers", "2"]) == 0
    assert seen == [str(tmp_path / "project")]
    # nothing is imported before the workers do it: the app's import may open connections
    assert name not in sys.modules


def test_serve_on_postgresql_without_psycopg_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    uvicorn_calls: list[tuple[tuple[Any, ...], dict[str, Any]]],
) -> None:
    write(tmp_path, GOOD, "migration_map.yaml")
    monkeypatch.setitem(sys.modules, "psycopg", None)  # an install without the [postgres] extra
    monkeypatch.setenv("GATEWAY_STORE_URL", "postgresql://gw:secret@db/gateway")
    code, _, err = run(capsys, "serve", "--map", "migration_map.yaml")
    assert code == 2 and uvicorn_calls == []
    assert err.startswith("gateway serve: error: the store postgresql://gw:***@db/gateway is on PostgreSQL, "
                          "which needs psycopg 3 (")
    assert err.endswith("): pip install 'migration-gateway[postgres]' (set GATEWAY_STORE_URL)\n")
    assert "secret" not in err


def test_commands_that_import_no_app_take_no_app_dir(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "explain", "GET", "/", "--app-dir", ".")[0] == 2
    assert loading._app_dir == []
