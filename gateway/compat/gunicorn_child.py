"""Serve one WSGI app object with gunicorn in a forked child, for remote mode in a test run.

The app a test suite builds (its config, its temporary database) exists only in the test
process, so no `gunicorn module:app` command line can serve it. A fork carries the object over:
the child runs a gunicorn arbiter whose worker serves exactly that app, over real TCP.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

_START_WAIT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fresh_database_connections() -> int:
    """In the forked child, leave the test process's pooled database connections alone.

    A connection carried across fork() is shared with the parent (SQLite says never to use one;
    a server connection's socket would interleave two conversations): SQLAlchemy's own recipe
    for a child is to start each engine's pool anew without closing what the parent still uses.
    An in-memory SQLite database exists only in the test process, so its engine keeps the copy
    the fork made: that copy is all the child can see of it."""
    base = sys.modules.get("sqlalchemy.engine.base")
    if base is None:
        return 0
    renewed = 0
    for obj in gc.get_objects():
        if not isinstance(obj, base.Engine):
            continue
        url = obj.url
        if url.get_backend_name() == "sqlite" and (url.database or ":memory:").startswith(
            (":memory:", "file::memory:")
        ):
            continue
        obj.pool = obj.pool.recreate()  # what dispose(close=False) does, on every SQLAlchemy version
        renewed += 1
    return renewed


def _forget_pushed_contexts() -> None:
    """A server process starts with no Flask context pushed; the forked child must too.

    The test that forked it may hold an app context (unittest setUp, a fixture's
    test_request_context): requests in the child would reuse it, sharing its `g` and never
    tearing it down (Flask-SQLAlchemy then never ends a request's session, holding SQLite's
    lock against the test's own tearDown). Werkzeug 2+ keeps contexts in context variables,
    left behind by running gunicorn in an empty context; Werkzeug 1 keys them by thread id."""
    local = sys.modules.get("werkzeug.local")
    if local is None:
        return
    ident = threading.get_ident()
    for obj in gc.get_objects():
        if isinstance(obj, local.Local):
            storage = getattr(obj, "__storage__", None)
            if isinstance(storage, dict):
                storage.pop(ident, None)


def _run_gunicorn(app: Callable[..., Any], port: int, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    class _Served(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"127.0.0.1:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "sync")
            self.cfg.set("loglevel", "warning")
            self.cfg.set("graceful_timeout", 2)

        def load(self) -> Callable[..., Any]:
            return app

    _Served().run()


class ForkedGunicorn:
    def __init__(self, app: Callable[..., Any], workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        pid = os.fork()
        if pid == 0:  # the child: gunicorn or nothing, and never back into the test run
            code = 0
            try:
                _fresh_database_connections()
                _forget_pushed_contexts()
                contextvars.Context().run(_run_gunicorn, app, self.port, workers)
            except SystemExit as stop:  # gunicorn's way of ending, in the arbiter and its worker
                code = stop.code if isinstance(stop.code, int) else 0
            except BaseException:
                traceback.print_exc()  # the parent only sees the exit status
                code = 1
            finally:
                os._exit(code)
        self.pid = pid
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_WAIT
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                raise RuntimeError(f"gunicorn exited at start (status {status}) on port {self.port}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"gunicorn did not listen on 127.0.0.1:{self.port} within {_START_WAIT:.0f} s")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
