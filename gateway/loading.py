"""Import-string loading of the legacy and native apps ("package.module:attribute")."""

from __future__ import annotations

import importlib
import inspect
from typing import Any


class AppLoadError(Exception):
    pass


def load_object(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(f"{spec!r}: expected an import string like 'package.module:app'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppLoadError(f"{spec!r}: cannot import module {module_name!r}: {exc}") from exc
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
