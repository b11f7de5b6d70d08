"""The demo legacy app with a throttled CSV export, so a test can hang up mid-stream.

Used as GATEWAY_LEGACY_APP=tests.e2e.slow_legacy:create_app. Each exported row waits
SLOW_EXPORT_DELAY seconds; how many rows were produced and whether the iterable was
closed are written to SLOW_EXPORT_REPORT, a file the test reads.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from legacy_flask.app import create_app as create_legacy_app


class _Throttled:
    def __init__(self, inner: Iterable[bytes], delay: float, report: str) -> None:
        self.inner, self.delay, self.report = inner, delay, report
        self.rows = 0
        self._write(closed=False)

    def _write(self, *, closed: bool) -> None:
        with open(self.report, "w") as f:
            json.dump({"rows": self.rows, "closed": closed}, f)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            time.sleep(self.delay)
            self.rows += 1
            self._write(closed=False)
            yield chunk

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
        self._write(closed=True)


def create_app() -> Any:
    app = create_legacy_app()
    inner = app.wsgi_app
    delay = float(os.environ.get("SLOW_EXPORT_DELAY", "0.05"))
    report = os.environ["SLOW_EXPORT_REPORT"]

    def throttled(environ: dict[str, Any], start_response: Any) -> Any:
        result = inner(environ, start_response)
        if environ.get("PATH_INFO") == "/api/orders/export.csv":
            return _Throttled(result, delay, report)
        return result

    app.wsgi_app = throttled  # type: ignore[method-assign]
    return app
