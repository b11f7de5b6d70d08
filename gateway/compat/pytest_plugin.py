"""Run a Flask app's own test suite through the gateway: `pytest -p gateway.compat.pytest_plugin`.

With GATEWAY_COMPAT_MODE set, every Flask app the suite calls as a WSGI app (its test client,
WebTest, any WSGI caller) is answered by a gateway that has that app as its legacy side:

- `inprocess`: the app in-process behind the gateway's bridge, as `gateway serve` runs it;
- `remote`: the app served by gunicorn in a forked child, the gateway proxying to its URL;
- `shadow`: in-process, and a second bridge to the same app (same code, same database) as the
  new side, shadowing every GET route the map names (GATEWAY_COMPAT_MAP), results going to
  the parity store at GATEWAY_COMPAT_STORE.

Unset or `direct`, the plugin changes nothing. Each gateway lives until the end of the test
that first called its app (a module-scoped app gets a new one in the next test).
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any

import pytest

from gateway.compat.wsgi_client import GatewayWSGI, SideChannel
from gateway.no_native import app as no_native_app

MODES = ("direct", "inprocess", "remote", "shadow")
_EMPTY_MAP = "version: 1\ndefaults: {owner: legacy}\nroutes: []\n"


class _Served:
    """One app's gateway, and in remote mode the gunicorn behind it."""

    def __init__(self, mode: str, app: Any, call: Callable[..., Iterable[bytes]], workdir: Path) -> None:
        from gateway.app import Gateway
        from gateway.bridge import LegacyBridge
        from gateway.settings import GatewaySettings

        self._gunicorn: Any = None
        channel = SideChannel()

        def legacy(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            return call(app, environ, start_response)

        map_path = os.environ.get("GATEWAY_COMPAT_MAP")
        if not map_path:
            map_path = str(workdir / "map.yaml")
            Path(map_path).write_text(_EMPTY_MAP)
        store = os.environ.get("GATEWAY_COMPAT_STORE") or f"sqlite:///{workdir / 'store.db'}"
        legacy_url = None
        if mode == "remote":
            from gateway.compat.gunicorn_child import ForkedGunicorn

            self._gunicorn = ForkedGunicorn(legacy)
            legacy_url = self._gunicorn.url
        settings = GatewaySettings(
            map_path=Path(map_path),
            store_url=store,
            legacy_url=legacy_url,
            access_log=False,
            served_by_header="",  # an app's tests may count headers: add none of our own
            log_level="WARNING",
            # the suite's every GET is to be compared against the second copy: no CPU budget
            # skips one (the budget protects a live primary's latency, not a test's)
            shadow_cpu_budget=1.0,
        )
        wrapped = channel.wrap(legacy)
        native: Any = no_native_app
        if mode == "shadow":
            native = LegacyBridge(wrapped, threads=4)  # the second copy: its own threads, same app
        self.gateway = Gateway(settings, legacy_app=wrapped, native_app=native)
        try:
            self.wsgi = GatewayWSGI(
                self.gateway.dispatcher,
                side_channel=channel if mode != "remote" else None,
                # each request's shadow copy runs before the suite's next request can change the data
                settle=self.gateway.shadow.drain if mode == "shadow" else None,
            )
        except BaseException:
            self._stop_gunicorn()
            raise

    def close(self) -> None:
        try:
            self.wsgi.close()
        finally:
            self._stop_gunicorn()

    def _stop_gunicorn(self) -> None:
        if self._gunicorn is not None:
            self._gunicorn.stop()
            self._gunicorn = None


class CompatPlugin:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._served: weakref.WeakKeyDictionary[Any, _Served] = weakref.WeakKeyDictionary()
        self._workdir = Path(tempfile.mkdtemp(prefix="gateway-compat-"))
        self._original: Callable[..., Iterable[bytes]] | None = None
        self._count = 0

    def install(self) -> None:
        import flask

        original = flask.Flask.__call__
        self._original = original
        plugin = self

        def through_gateway(app: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            return plugin.served(app)(environ, start_response)

        flask.Flask.__call__ = through_gateway  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if self._original is not None:
            import flask

            flask.Flask.__call__ = self._original  # type: ignore[method-assign]

    def served(self, app: Any) -> GatewayWSGI:
        served = self._served.get(app)
        if served is None:
            assert self._original is not None
            self._count += 1
            workdir = self._workdir / str(self._count)
            workdir.mkdir()
            served = _Served(self.mode, app, self._original, workdir)
            self._served[app] = served
        return served.wsgi

    def close_all(self) -> None:
        served, self._served = list(self._served.values()), weakref.WeakKeyDictionary()
        for one in served:
            one.close()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        yield
        self.close_all()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.close_all()
        self.uninstall()

    def pytest_report_header(self, config: pytest.Config) -> str:
        return f"gateway compat: every Flask app answered through the gateway ({self.mode})"


def pytest_configure(config: pytest.Config) -> None:
    mode = os.environ.get("GATEWAY_COMPAT_MODE", "direct") or "direct"
    if mode not in MODES:
        raise pytest.UsageError(f"GATEWAY_COMPAT_MODE={mode!r}: expected one of {', '.join(MODES)}")
    if mode == "direct":
        return
    plugin = CompatPlugin(mode)
    plugin.install()
    config.pluginmanager.register(plugin, "gateway-compat")
