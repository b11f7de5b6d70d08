"""A worker of `gateway serve --workers N` that cannot build the gateway stops the server.

uvicorn's supervisor restarts a worker that dies, so an app that fails to import (or a
factory that raises) would be imported, fail and be restarted forever, with a traceback
each time. Retrying cannot fix what failed at start-up: the worker writes one line saying
what went wrong to a file the parent named (and, for an error of the app's own, its
traceback to stderr), asks the parent to stop (SIGTERM, which uvicorn
handles as a graceful shutdown of every worker) and exits; the parent then prints that line
and exits with an error. A worker that started once and fails later is not concerned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from gateway.loading import AppLoadError

ERRORS_ENV = "_GATEWAY_SERVE_ERRORS"  # the file, set by the parent for its workers only
PARENT_ENV = "_GATEWAY_SERVE_PARENT"


def describe(exc: BaseException) -> str:
    """One line: the message of an error the gateway words itself, else the type and message."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, AppLoadError) else f"{type(exc).__name__}: {text}"


def failed(exc: BaseException) -> None:
    """In a worker of a supervised `gateway serve`: report and stop (SystemExit); otherwise return."""
    path, parent = os.environ.get(ERRORS_ENV), os.environ.get(PARENT_ENV)
    if not path or not parent or os.getppid() != int(parent):
        return
    if not isinstance(exc, AppLoadError):  # the app's own failure: where it is matters
        traceback.print_exception(exc, file=sys.stderr)
    with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as f:
        f.write(describe(exc) + "\n")
    with contextlib.suppress(OSError):
        os.kill(int(parent), signal.SIGTERM)
    raise SystemExit(3)


@contextlib.contextmanager
def supervised(directory: Path) -> Iterator[Path]:
    """For the parent: the file its workers report start-up failures in, while they run."""
    path = directory / "worker-startup-errors"
    path.write_text("")
    os.environ[ERRORS_ENV], os.environ[PARENT_ENV] = str(path), str(os.getpid())
    try:
        yield path
    finally:
        os.environ.pop(ERRORS_ENV, None)
        os.environ.pop(PARENT_ENV, None)


def reported(path: Path) -> list[str]:
    """What the workers reported, each line once, in the order first seen."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return list(dict.fromkeys(line for line in lines if line))
