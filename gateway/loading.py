"""Import-string loading of the legacy and native apps ("package.module:attribute").

The apps are imported from the directory the gateway runs in, as uvicorn, gunicorn and
`flask run` do: `use_app_dir` puts it (or `--app-dir`) first on sys.path.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from gateway.interpreter import REMOTE_MODE, conflict

FIX = "run from the app's directory or pass --app-dir"


class AppLoadError(Exception):
    pass


_app_dir: list[Path] = []  # what use_app_dir put first, for the messages of this process


def use_app_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """Put `directory` (the current one unless given) first on sys.path. Worker processes are
    spawned with their parent's sys.path, so `gateway serve --workers N` finds the app in all."""
    path = Path(directory).resolve() if directory is not None else Path.cwd()
    if not path.is_dir():
        raise AppLoadError(f"--app-dir {directory}: no such directory")
    entry = str(path)
    if sys.path[:1] != [entry]:
        sys.path.insert(0, entry)
        importlib.invalidate_caches()
    _app_dir[:] = [path]
    return path


def _searched() -> str:
    if _app_dir:
        return f"searched {_app_dir[0]} and the rest of sys.path"
    cwd = Path.cwd()
    if any(Path(entry or ".").resolve() == cwd for entry in sys.path):
        return f"searched {cwd} and the rest of sys.path"
    return f"searched sys.path, which does not hold the current directory {cwd}"


def _split(spec: str) -> tuple[str, str]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(f"{spec!r}: expected an import string like 'package.module:app'")
    return module_name, attr


def _not_found(spec: str, module_name: str) -> AppLoadError:
    return AppLoadError(f"{spec!r}: cannot import module {module_name!r} ({_searched()}); {FIX}")


def find_module(spec: str) -> None:
    """Raise AppLoadError when the import string's top-level module is nowhere on sys.path;
    nothing is imported (an app's import can be slow, or open connections)."""
    module_name, _ = _split(spec)
    top = module_name.split(".")[0]
    if top in sys.modules:
        return
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise _not_found(spec, module_name)


def load_object(spec: str) -> Any:
    module_name, attr = _split(spec)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # the app's own module (or a package of its name) is missing, not something it imports
        missing = isinstance(exc, ModuleNotFoundError) and exc.name is not None
        if missing and (module_name + ".").startswith(f"{exc.name}."):
            raise _not_found(spec, module_name) from exc
        message = f"{spec!r}: cannot import module {module_name!r}: {exc}"
        why = conflict(exc)
        if why is not None:
            message += f"; {why}, so {REMOTE_MODE}"
        raise AppLoadError(message) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"{spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _is_factory(obj: Any) -> bool:
    """A function taking no required arguments is a factory; an app takes two (WSGI) or three (ASGI)."""
    if not (inspect.isfunction(obj) or inspect.ismethod(obj)):
        return False
    params = inspect.signature(obj).parameters.values()
    required = [
        p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return not required


def load_app(spec: str) -> Any:
    obj = load_object(spec)
    if _is_factory(obj):
        obj = obj()
    if not callable(obj):
        raise AppLoadError(f"{spec!r} is not an app: {type(obj).__name__} is not callable")
    return obj
