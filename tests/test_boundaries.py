"""Architecture rules (DESIGN.md, style 7), checked on the source rather than trusted.

- gateway/ imports neither features, legacy_flask nor flask: it serves any WSGI/ASGI app.
- a feature imports no other feature and not legacy_flask; features.core imports no feature.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {
            "import_module", "__import__",
        } and node.args and isinstance(node.args[0], ast.Constant):
            found.add(str(node.args[0].value))
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def violations(package: str, rule: callable) -> list[str]:  # type: ignore[valid-type]
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in imported_modules(path):
            problem = rule(path.relative_to(ROOT), module)
            if problem:
                out.append(f"{path.relative_to(ROOT)} imports {module}: {problem}")
    return out


# The compatibility plugin is loaded only by `pytest -p gateway.compat.pytest_plugin` inside a
# Flask app's own test suite, where flask is that app's dependency; it patches flask.Flask so the
# suite's test client goes through the gateway. It may import flask, never the demo apps.
FLASK_ALLOWED = {Path("gateway/compat/pytest_plugin.py")}


def gateway_rule(path: Path, module: str) -> str | None:
    if top(module) in {"flask", "werkzeug"} and path in FLASK_ALLOWED:
        return None
    if top(module) in {"features", "legacy_flask", "flask", "werkzeug"}:
        return "gateway/ must reach apps only through import strings in settings"
    return None


def feature_rule(path: Path, module: str) -> str | None:
    parts = path.parts  # ("features", "<name>", ...)
    own = parts[1] if len(parts) > 2 else None
    if top(module) in {"legacy_flask", "flask", "werkzeug"}:
        return "features never import the legacy app"
    if module.startswith("features.") and own is not None:
        target = module.split(".")[1]
        if own == "core" and target != "core":
            return "features.core is shared infrastructure and imports no feature"
        if own not in ("core",) and target not in (own, "core"):
            return f"feature {own!r} must not import feature {target!r}"
    return None


def test_gateway_imports_no_app() -> None:
    assert violations("gateway", gateway_rule) == []


def test_features_import_no_other_feature_nor_legacy() -> None:
    assert violations("features", feature_rule) == []


@pytest.mark.parametrize(
    ("path", "module", "bad"),
    [
        ("gateway/x.py", "features.users.router", True),
        ("gateway/x.py", "legacy_flask.app", True),
        ("gateway/x.py", "flask", True),
        ("gateway/x.py", "a2wsgi", False),
        ("gateway/compat/pytest_plugin.py", "flask", False),
        ("gateway/compat/pytest_plugin.py", "legacy_flask.app", True),
        ("gateway/compat/wsgi_client.py", "flask", True),
    ],
)
def test_gateway_rule_catches_what_it_should(path: str, module: str, bad: bool) -> None:
    assert (gateway_rule(Path(path), module) is not None) is bad


@pytest.mark.parametrize(
    ("path", "module", "bad"),
    [
        ("features/users/service.py", "features.products.repo", True),
        ("features/users/service.py", "legacy_flask.models", True),
        ("features/core/db.py", "features.users.models", True),
        ("features/users/service.py", "features.users.repo", False),
        ("features/users/service.py", "features.core.db", False),
        ("features/main.py", "features.users.router", False),  # the composition root wires them
    ],
)
def test_feature_rule_catches_what_it_should(path: str, module: str, bad: bool) -> None:
    assert (feature_rule(Path(path), module) is not None) is bad


def test_rule_sees_dynamic_and_relative_free_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import importlib\nimportlib.import_module('legacy_flask.app')\nfrom flask import Flask\n")
    assert {"legacy_flask.app", "flask"} <= imported_modules(source)
