"""Store URLs: which database, where, and how to name it in a message without its password."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from urllib.parse import unquote

POSTGRES_EXTRA = "pip install 'migration-gateway[postgres]'"
URL_FORMS = "sqlite:///PATH or postgresql://USER@HOST/DATABASE"


class StoreError(Exception):
    """The store URL names a database the gateway cannot use."""


@dataclass(frozen=True, slots=True)
class StoreUrl:
    dialect: str  # sqlite | postgresql
    target: str  # the SQLite file (":memory:" for none), or the libpq connection URI
    where: str  # the URL with its password hidden, for messages


def _hide_password(url: str) -> str:
    return re.sub(r"^([^:/?#]+://[^:@/?#]*):[^@/?#]*@", r"\1:***@", url)


def parse_url(url: str) -> StoreUrl:
    """`sqlite:///relative.db`, `sqlite:////abs.db`, `sqlite://` (in memory), `postgresql://...`
    (also `postgres://`, `postgresql+psycopg://`)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise StoreError(f"invalid store URL {url!r}: expected {URL_FORMS}")
    backend, _, driver = scheme.lower().partition("+")
    where = _hide_password(url)
    if backend == "sqlite" and driver in ("", "pysqlite"):
        path, _, query = rest.partition("?")
        if query or (path and not path.startswith("/")):
            raise StoreError(f"invalid store URL {where!r}: expected sqlite:///PATH (no host, no ?options)")
        return StoreUrl("sqlite", unquote(path[1:]) or ":memory:", where)
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        _need_psycopg(where)
        return StoreUrl("postgresql", f"postgresql://{rest}", where)
    if backend in ("sqlite", "postgresql", "postgres"):
        raise StoreError(f"invalid store URL {where!r}: the store has its own driver; expected {URL_FORMS}")
    raise StoreError(f"the parity store runs on SQLite or PostgreSQL, not {backend!r} ({where})")


def _need_psycopg(where: str) -> None:
    """psycopg is the `postgres` extra: a core install beside a legacy app brings no driver."""
    try:
        importlib.import_module("psycopg")
    except ImportError as exc:
        raise StoreError(
            f"the store {where} is on PostgreSQL, which needs psycopg 3 ({exc}): {POSTGRES_EXTRA}"
        ) from None
