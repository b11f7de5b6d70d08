"""The access log: one JSON line per request, shadow outcomes joined later, nothing secret in it."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.access_log import AccessLog
from gateway.app import Gateway
from gateway.dispatcher import Exchange
from gateway.logs import ACCESS_LOGGER, JsonFormatter, configure_logging
from gateway.map_loader import parse_map
from gateway.map_schema import Owner
from gateway.settings import GatewaySettings
from gateway.table import Route, build_table
from legacy_flask.seed import seed
from tests.shadow.sink import MemorySink
from tests.support import asgi_client, eventually

FIELDS = {"time", "request_id", "method", "path", "route", "backend", "status", "latency_ms"}

UNIT_MAP = """\
version: 1
routes:
  - {id: items.get, path: /items/<int:id>, methods: [GET], owner: legacy, shadow: {sample: 1.0, timeout_ms: 500}}
"""


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def json(self) -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in self.records]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def route() -> Route:
    return build_table(parse_map(UNIT_MAP)).lookup("GET", "/items/1")


@pytest.fixture
def out() -> Iterator[Lines]:
    logger = logging.getLogger("tests.access")
    handler = Lines()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield handler
    logger.removeHandler(handler)


def make_log(out: Lines, clock: Clock, **kwargs: Any) -> AccessLog:
    return AccessLog(logger=logging.getLogger("tests.access"), clock=clock, **kwargs)


def exchange(route: Route, request_id: str = "r1", shadowed: bool = False, **kwargs: Any) -> Exchange:
    values: dict[str, Any] = {
        "side": Owner.LEGACY, "method": "GET", "path": "/items/1", "status": 200, "latency_ms": 12.345,
        **kwargs,
    }
    return Exchange(route=route, request_id=request_id, shadowed=shadowed, **values)


def test_a_plain_request_is_one_json_line_at_once(route: Route, out: Lines) -> None:
    log = make_log(out, Clock())
    log.observe(exchange(route, latency_ms=12.345))
    [line] = out.json
    assert set(line) == FIELDS
    assert {k: v for k, v in line.items() if k != "time"} == {
        "request_id": "r1", "method": "GET", "path": "/items/1", "route": "items.get",
        "backend": "legacy", "status": 200, "latency_ms": 12.3,
    }
    when = datetime.fromisoformat(line["time"])
    assert when.utcoffset() is not None and when.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((datetime.now(UTC) - when).total_seconds()) < 60


def test_a_shadowed_line_waits_for_its_outcome(route: Route, out: Lines) -> None:
    log = make_log(out, Clock())
    log.observe(exchange(route, "r1", shadowed=True))
    log.observe(exchange(route, "r2", shadowed=True))
    assert (out.records, log.parked) == ([], 2)
    log.resolve("r2", "diff")
    log.resolve("r1", "match")
    assert [(line["request_id"], line["shadow"]) for line in out.json] == [("r2", "diff"), ("r1", "match")]
    assert log.parked == 0


def test_an_outcome_reported_before_the_line_is_joined_to_it(route: Route, out: Lines) -> None:
    # a shadow skipped before the owner answers (request too large) reports first
    log = make_log(out, Clock())
    log.resolve("r1", "skipped:request_too_large")
    assert out.records == []
    log.observe(exchange(route, "r1", shadowed=True))
    assert [line["shadow"] for line in out.json] == ["skipped:request_too_large"]
    assert log.parked == 0


def test_an_outcome_known_with_the_answer_is_in_its_line_at_once(route: Route, out: Lines) -> None:
    # a shadow the dispatcher skipped for the budget: nothing is parked, on either path
    log = make_log(out, Clock())
    log.answered(log.prepared(route.id, "legacy"), "r1", "GET", "/x", 200, 1.25, "skipped:budget")
    log.observe(exchange(route, "r2", complete=False, shadow_outcome="skipped:budget"))
    log.flush()
    assert [(line["request_id"], line["shadow"]) for line in out.json] == [
        ("r1", "skipped:budget"), ("r2", "skipped:budget")
    ]
    assert out.json[1]["incomplete"] is True and log.parked == 0


def test_the_same_request_id_twice_keeps_both_lines_in_order(route: Route, out: Lines) -> None:
    log = make_log(out, Clock())
    log.observe(exchange(route, "dup", shadowed=True, status=200))
    log.observe(exchange(route, "dup", shadowed=True, status=404))
    log.resolve("dup", "match")
    log.resolve("dup", "error")
    assert [(line["status"], line["shadow"]) for line in out.json] == [(200, "match"), (404, "error")]


def test_an_overdue_line_is_written_pending_by_the_sweep(route: Route, out: Lines) -> None:
    clock = Clock()
    log = make_log(out, clock, margin_s=1.0)  # deadline: the route's 0.5 s timeout + 1 s
    log.observe(exchange(route, "late", shadowed=True))
    clock.now += 1.4
    assert log.sweep() == 0 and out.records == []
    clock.now += 0.2
    assert log.sweep() == 1
    assert [(line["request_id"], line["shadow"]) for line in out.json] == [("late", "pending")]
    log.resolve("late", "match")  # too late: nothing is written twice
    assert len(out.records) == 1 and log.parked == 0


def test_a_stale_early_outcome_is_dropped(route: Route, out: Lines) -> None:
    clock = Clock()
    log = make_log(out, clock, margin_s=1.0)
    log.resolve("gone", "match")  # its line never came (the request failed)
    clock.now += 2
    log.sweep()
    log.observe(exchange(route, "gone", shadowed=True))  # a later request reusing the id waits
    assert (out.records, log.parked) == ([], 1)


def test_the_parked_set_is_bounded(route: Route, out: Lines) -> None:
    log = make_log(out, Clock(), max_parked=2)
    for i in range(3):
        log.observe(exchange(route, f"r{i}", shadowed=True))
    assert log.parked == 2
    assert [(line["request_id"], line["shadow"]) for line in out.json] == [("r2", "pending")]
    log.resolve("r0", "match")
    log.observe(exchange(route, "r3", shadowed=True))  # room again
    assert log.parked == 2


@pytest.mark.anyio
async def test_stop_writes_every_waiting_line_and_later_ones_at_once(route: Route, out: Lines) -> None:
    log = make_log(out, Clock())
    await log.start()
    log.observe(exchange(route, "a", shadowed=True))
    await log.stop()
    log.observe(exchange(route, "b", shadowed=True))
    assert [(line["request_id"], line["shadow"]) for line in out.json] == [("a", "pending"), ("b", "pending")]
    assert log.parked == 0


@pytest.mark.anyio
async def test_the_periodic_sweep_flushes_without_being_called(route: Route, out: Lines) -> None:
    log = AccessLog(logger=logging.getLogger("tests.access"), margin_s=0, sweep_interval=0.01)
    await log.start()
    try:
        log.observe(exchange(route, "x", shadowed=True))
        await eventually(lambda: len(out.records) == 1, timeout=5, what="pending line")
    finally:
        await log.stop()
    assert out.json[0]["shadow"] == "pending"


def test_json_formatter_makes_one_json_object_per_record() -> None:
    record = logging.LogRecord("gateway.map", logging.ERROR, __file__, 1, 'bad "map"\nline %d', (3,), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert (data["level"], data["logger"], data["message"]) == ("ERROR", "gateway.map", 'bad "map"\nline 3')
    assert data["time"].endswith("Z")


@pytest.fixture
def restore_loggers() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("gateway", ACCESS_LOGGER)]
    saved = [(lg, list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    yield
    for lg, handlers, propagate, level in saved:
        lg.handlers[:] = handlers
        lg.propagate, lg.level = propagate, level


@pytest.mark.usefixtures("restore_loggers")
def test_configure_logging_formats() -> None:
    configure_logging("warning", "text")
    gateway = logging.getLogger("gateway")
    [handler] = [h for h in gateway.handlers if getattr(h, "_gateway", False)]
    assert isinstance(handler.formatter, logging.Formatter)
    assert not isinstance(handler.formatter, JsonFormatter)
    # the access log keeps logging, as bare JSON lines, whatever the level and format
    assert logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
    configure_logging("info", "json")
    assert [h for h in gateway.handlers if getattr(h, "_gateway", False)] == [handler]  # not added twice
    assert isinstance(handler.formatter, JsonFormatter)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (GatewaySettings().access_log, GatewaySettings().log_format) == (True, "json")
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "false")
    monkeypatch.setenv("GATEWAY_LOG_FORMAT", "text")
    assert (GatewaySettings().access_log, GatewaySettings().log_format) == (False, "text")
    monkeypatch.setenv("GATEWAY_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        GatewaySettings()


# --- through the whole gateway, with the demo apps ------------------------------------------

DEMO_MAP = """\
version: 1
defaults:
  shadow: {noise_sample: 0}
routes:
  - id: products.get
    path: /api/products/<int:product_id>
    methods: [GET]
    owner: legacy
    shadow: {sample: 1.0}
  - id: users.get
    path: /api/users/<int:user_id>
    methods: [GET]
    owner: new
  - id: users.create
    path: /api/users
    methods: [POST]
    owner: legacy
    shadow: {sample: 1.0, unsafe: rollback, max_body_bytes: 400, ignore: [body.created_at, body.updated_at]}
"""

SECRETS = ("tok-SECRET", "cookie-SECRET", "override-SECRET", "q-SECRET", "pw-SECRET", "login-SECRET")


@pytest.fixture
async def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Gateway, MemorySink]]:
    url = f"sqlite:///{tmp_path}/demo.db"
    seed(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SECRET_KEY", "access-secret")
    map_path = tmp_path / "map.yaml"
    map_path.write_text(DEMO_MAP)
    sink = MemorySink()
    gw = Gateway(GatewaySettings(map_path=map_path, store_url=f"sqlite:///{tmp_path}/parity.db"), sink=sink)
    await gw.startup({})
    yield gw, sink
    await gw.shutdown()


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # everything logged on the server side; an earlier configure_logging may have cut propagation
    for name in ("gateway", ACCESS_LOGGER):
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    with caplog.at_level(logging.DEBUG):
        yield caplog


def server_side(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore", "asyncio"))]


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]


@pytest.mark.anyio
async def test_every_request_is_logged_and_shadowed_ones_carry_their_outcome(
    demo: tuple[Gateway, MemorySink], captured: pytest.LogCaptureFixture
) -> None:
    gw, sink = demo
    big = {"email": "big@example.com", "name": "x" * 400, "password": "long-enough"}
    async with asgi_client(gw.dispatcher) as c:
        r1 = await c.get("/api/products/1", headers={"X-Request-ID": "shadow-1"})
        r2 = await c.get("/api/users/1", headers={"X-Request-ID": "native-1"})
        r3 = await c.get("/healthz?x=1", headers={"X-Request-ID": "unmapped-1"})
        r4 = await c.post("/api/users", json=big, headers={"X-Request-ID": "big-1"})
        await c.get("/metrics")  # the gateway's own endpoints are not in the access log
    assert [r.status_code for r in (r1, r2, r3)] == [200, 200, 200]
    await eventually(lambda: len(access_lines(captured)) == 4, timeout=10, what="four access lines")
    lines = {line["request_id"]: line for line in access_lines(captured)}
    assert set(lines) == {"shadow-1", "native-1", "unmapped-1", "big-1"}
    for line in lines.values():
        assert FIELDS <= set(line) <= FIELDS | {"shadow"}
    assert {k: lines["native-1"][k] for k in ("route", "backend", "status", "method", "path")} == {
        "route": "users.get", "backend": "new", "status": 200, "method": "GET", "path": "/api/users/1"
    }
    assert "shadow" not in lines["native-1"]
    assert (lines["unmapped-1"]["route"], lines["unmapped-1"]["path"]) == ("unmapped", "/healthz")
    [comparison] = [c for c in sink.comparisons if c["route_id"] == "products.get"]
    assert lines["shadow-1"]["shadow"] == ("diff" if comparison["diffs"] else "match")
    # skipped before the owner ran: the outcome came first and waited for the line
    assert (lines["big-1"]["status"], lines["big-1"]["shadow"]) == (r4.status_code, "skipped:request_too_large")
    assert gw.access_log is not None and gw.access_log.parked == 0


@pytest.mark.anyio
async def test_no_secret_reaches_the_logs(demo: tuple[Gateway, MemorySink], captured: pytest.LogCaptureFixture) -> None:
    gw, sink = demo
    secret_headers = {
        "Authorization": "Bearer tok-SECRET",
        "Cookie": "session=cookie-SECRET",
        "X-Gateway-Token": "override-SECRET",
        "X-Gateway-Backend": "new",
    }
    async with asgi_client(gw.dispatcher) as c:
        await c.get("/api/products/2?token=q-SECRET", headers=secret_headers)
        await c.get("/api/users/2?token=q-SECRET", headers=secret_headers)
        await c.post("/api/users?token=q-SECRET", headers=secret_headers,
                     json={"email": "new@example.com", "name": "New", "password": "pw-SECRET-123"})
        await c.post("/auth/login", headers=secret_headers,
                     json={"email": "alice@example.com", "password": "login-SECRET-1"})
    await eventually(lambda: len(access_lines(captured)) == 4, timeout=10, what="four access lines")
    await eventually(lambda: sink.total >= 2, timeout=10, what="both shadows done")
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in server_side(captured))
    assert "/api/users" in text  # the capture does see the requests
    for secret in SECRETS:
        assert secret not in text
    assert all("?" not in line["path"] for line in access_lines(captured))


@pytest.mark.anyio
async def test_access_log_off(tmp_path: Path) -> None:
    map_path = tmp_path / "map.yaml"
    map_path.write_text(UNIT_MAP)
    gw = Gateway(GatewaySettings(
        map_path=map_path, access_log=False, store_url=f"sqlite:///{tmp_path}/parity.db",
        legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
        native_app="tests.gateway.wsgi_fixtures:native_factory",
    ))
    assert gw.access_log is None and gw.shadow.on_outcome is None
    assert gw.dispatcher.access_log is None and gw.dispatcher.observers == ()
