"""Demo traffic: a realistic mix of requests against a running demo gateway.

The mix follows the demo API's contract (legacy_flask/README.md): mostly reads, some writes
with valid JSON bodies, a few 404s, 401s and validation errors, and some unmapped legacy
pages. It is checked against the map: the first round sends one request to every mapped
route (a GET route the catalogue does not know gets a generated GET; other methods are
reported as not exercised), then requests are drawn by weight. The same seed draws the same
mix; what the writes create is named with a per-run token, so reruns do not collide.

This module sends requests and counts answers; gateway/cli_demo.py draws the progress and
the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.map_loader import LoadedMap
from gateway.paths import FASTAPI_PARAM, FLASK_PARAM
from gateway.table import RoutingTable, build_table

ACCOUNTS = {
    "alice": {"email": "alice@example.com", "password": "alice-password"},
    "admin": {"email": "admin@example.com", "password": "admin-password"},
}
CATEGORIES = ("books", "electronics", "garden", "home", "sports", "toys")
SAMPLE_VALUES = {"int": "1", "float": "1.0", "uuid": "00000000-0000-0000-0000-000000000000"}
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "error")


class Unreachable(Exception):
    """The gateway did not answer at all."""


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    params: dict[str, str] | None = None
    json: Any = None
    form: dict[str, str] | None = None
    session: str | None = None  # an ACCOUNTS name, or None: anonymous
    remember_user: bool = False  # a user created by this run, for later PUT and DELETE


class Context:
    """What the templates share: this run's token and the users it created."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(3)
        self._serial = itertools.count(1)
        self.users: deque[tuple[int, str]] = deque(maxlen=100)

    def unique(self) -> str:
        return f"{self.token}-{next(self._serial)}"


Make = Callable[[random.Random, Context], Call]


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    weight: float
    make: Make


def _products_list(rng: random.Random, ctx: Context) -> Call:
    params = {"page": str(rng.randint(1, 3)), "per_page": rng.choice(("10", "20"))}
    if rng.random() < 0.4:
        params["category"] = rng.choice(CATEGORIES)
    if rng.random() < 0.3:
        params["sort"] = rng.choice(("name", "-price", "price", "-created_at"))
    return Call("GET", "/api/products", params)


def _users_list(rng: random.Random, ctx: Context) -> Call:
    params = {"page": str(rng.randint(1, 3))}
    if rng.random() < 0.3:
        params["role"] = rng.choice(("customer", "staff"))
    if rng.random() < 0.3:
        params["sort"] = rng.choice(("name", "-created_at", "email"))
    return Call("GET", "/api/users", params)


def _new_user(rng: random.Random, ctx: Context) -> Call:
    tag = ctx.unique()
    body = {"email": f"demo-{tag}@example.com", "name": f"Demo {tag}", "password": "demo-password"}
    return Call("POST", "/api/users", json=body, remember_user=True)


def _replace_user(rng: random.Random, ctx: Context) -> Call:
    # only users this run created are replaced or deleted: the seeded accounts stay usable
    user_id, email = ctx.users[-1] if ctx.users else (999_999, "gone@example.com")
    body = {"email": email, "name": f"Replaced {ctx.unique()}", "role": "customer", "is_active": True}
    return Call("PUT", f"/api/users/{user_id}", json=body)


def _delete_user(rng: random.Random, ctx: Context) -> Call:
    user_id = ctx.users.popleft()[0] if ctx.users else 999_999
    return Call("DELETE", f"/api/users/{user_id}")


def _new_product(rng: random.Random, ctx: Context) -> Call:
    tag = ctx.unique()
    body = {
        "sku": f"DEMO-{tag}",
        "name": f"Demo product {tag}",
        "price": round(rng.uniform(1, 200), 2),
        "category": rng.choice(CATEGORIES),
        "stock": rng.randint(0, 50),
    }
    return Call("POST", "/api/products", json=body, session="admin")


def _new_order(rng: random.Random, ctx: Context) -> Call:
    lines = rng.randint(1, 3)
    items = [{"product_id": rng.randint(1, 60), "quantity": rng.randint(1, 2)} for _ in range(lines)]
    return Call("POST", "/api/orders", json={"items": items}, session="alice")


def _contact(rng: random.Random, ctx: Context) -> Call:
    form = {"name": "Demo visitor", "email": "visitor@example.com", "message": f"Hello ({ctx.unique()})"}
    return Call("POST", "/contact", form=form)


def _t(name: str, weight: float, make: Make) -> Template:
    return Template(name, weight, make)


# The first template of each route is the one the first round sends: a request that succeeds.
CATALOGUE: tuple[Template, ...] = (
    # reads, about three quarters of the traffic
    _t("products.list", 16, _products_list),
    _t("products.get", 16, lambda r, c: Call("GET", f"/api/products/{r.randint(1, 60)}")),
    _t("users.list", 7, _users_list),
    _t("users.get", 9, lambda r, c: Call("GET", f"/api/users/{r.randint(1, 50)}")),
    _t("users.me", 4, lambda r, c: Call("GET", "/api/me", session="alice")),
    _t("orders.list", 4, lambda r, c: Call("GET", "/api/orders", {"page": "1"}, session="alice")),
    _t("orders.get", 2, lambda r, c: Call("GET", f"/api/orders/{r.randint(1, 120)}", session="admin")),
    _t("orders.export", 0.5, lambda r, c: Call("GET", "/api/orders/export.csv", session="admin")),
    _t("page.catalogue", 3, lambda r, c: Call("GET", "/")),
    _t("page.product", 1, lambda r, c: Call("GET", f"/products/{r.randint(1, 60)}")),  # a 301
    _t("healthz", 2, lambda r, c: Call("GET", "/healthz")),
    # writes, with valid bodies
    _t("users.create", 3, _new_user),
    _t("users.patch", 2, lambda r, c: Call(
        "PATCH", f"/api/users/{r.randint(3, 50)}", json={"name": f"Renamed {c.unique()}"})),
    _t("users.put", 1, _replace_user),
    _t("users.delete", 1, _delete_user),
    _t("products.create", 1.5, _new_product),
    _t("products.update", 2, lambda r, c: Call(
        "PATCH", f"/api/products/{r.randint(1, 60)}", json={"stock": r.randint(20, 200)}, session="admin")),
    _t("orders.create", 2, _new_order),
    _t("contact", 0.5, _contact),
    # the errors clients make
    _t("products.get 404", 1, lambda r, c: Call("GET", f"/api/products/{r.randint(9_000, 9_999)}")),
    _t("users.get 404", 1, lambda r, c: Call("GET", f"/api/users/{r.randint(9_000, 9_999)}")),
    _t("users.create invalid", 1, lambda r, c: Call(
        "POST", "/api/users", json={"email": "not-an-email", "name": "", "password": "short"})),
    _t("products.list invalid", 0.5, lambda r, c: Call("GET", "/api/products", {"per_page": "500"})),
    _t("users.me anonymous", 1, lambda r, c: Call("GET", "/api/me")),
    _t("products.create anonymous", 0.5, lambda r, c: Call(
        "POST", "/api/products", json={"sku": "X", "name": "X", "price": 1, "category": "toys"})),
    _t("unknown path", 0.5, lambda r, c: Call("GET", "/api/no-such-thing")),
)


def _fixed_get(path: str, rng: random.Random, ctx: Context) -> Call:
    return Call("GET", path)


def sample_path(path: str) -> str:
    """A concrete URL for a map path: every parameter filled with a value of its type."""

    def fill(match: Any) -> str:
        return SAMPLE_VALUES.get(match.group("conv") or "string", "demo")

    return FASTAPI_PARAM.sub(fill, FLASK_PARAM.sub(fill, path))


class Mix:
    """The catalogue checked against a map: which route each request hits, and the plan."""

    def __init__(self, loaded: LoadedMap, catalogue: tuple[Template, ...] = CATALOGUE) -> None:
        self.table: RoutingTable = build_table(loaded)
        self.templates = list(catalogue)
        self.context = Context()
        self.route_ids = [entry.id for entry in loaded.map.routes]
        probe = random.Random(0)
        covered = {self.route_of(t.make(probe, Context())): t for t in reversed(catalogue)}
        self.not_exercised: list[str] = []
        for entry in loaded.map.routes:
            if entry.id in covered:
                continue
            methods = entry.methods or ("GET",)
            path = sample_path(entry.path)
            if "GET" in methods and self.route_of(Call("GET", path)) == entry.id:
                template = _t(entry.id, 1, functools.partial(_fixed_get, path))
                self.templates.append(template)
                covered[entry.id] = template
            else:
                self.not_exercised.append(f"{entry.id} ({'/'.join(methods)} {entry.path})")
        # one request per mapped route first, in the map's order
        self.first_round = [covered[r] for r in self.route_ids if r in covered]

    def route_of(self, call: Call) -> str:
        return self.table.lookup(call.method, call.path).id

    def plan(self, seed: int | None) -> Iterator[Call]:
        """The calls to send, lazily (writes that reuse created users see what came back)."""
        rng = random.Random(seed)
        for template in self.first_round:
            yield template.make(rng, self.context)
        weights = list(itertools.accumulate(t.weight for t in self.templates))
        while True:
            yield rng.choices(self.templates, cum_weights=weights)[0].make(rng, self.context)


@dataclass
class Summary:
    url: str
    counts: dict[str, Counter[str]] = field(default_factory=dict)  # route -> status class -> n
    errors: list[str] = field(default_factory=list)  # the first few transport errors
    notes: list[str] = field(default_factory=list)  # e.g. a login that failed
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def add(self, route: str, status: int | None, error: str | None) -> None:
        status_class = f"{status // 100}xx" if status is not None else "error"
        self.counts.setdefault(route, Counter())[status_class] += 1
        if error is not None and len(self.errors) < 5:
            self.errors.append(error)

    def total(self, status_class: str | None = None) -> int:
        return sum(c[status_class] if status_class else c.total() for c in self.counts.values())

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def as_json(self) -> dict[str, Any]:
        elapsed = self.elapsed
        return {
            "url": self.url,
            "requests": self.total(),
            "elapsed_s": round(elapsed, 3),
            "requests_per_s": round(self.total() / elapsed, 1) if elapsed > 0 else None,
            "by_class": {k: self.total(k) for k in STATUS_CLASSES},
            "routes": {
                route: {"requests": counts.total(), **{k: counts[k] for k in STATUS_CLASSES}}
                for route, counts in sorted(self.counts.items())
            },
            "error_samples": self.errors,
        }


async def drive(
    *,
    url: str,
    mix: Mix,
    requests: int | None,
    duration: float | None,
    concurrency: int,
    seed: int | None,
    on_answer: Callable[[Summary], None] = lambda summary: None,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> Summary:
    """Log in the demo accounts, then send `requests` calls (or as many as `duration` seconds
    allow) with `concurrency` workers; the logins are in the summary too."""
    summary = Summary(url)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    names: tuple[str | None, ...] = (None, *ACCOUNTS)
    clients = {name: httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) for name in names}
    try:
        await _probe(clients[None], url)
        summary.started = time.monotonic()

        async def send(call: Call) -> httpx.Response | None:
            route = mix.route_of(call)
            try:
                response = await clients[call.session].request(
                    call.method, call.path, params=call.params, json=call.json, data=call.form
                )
            except httpx.HTTPError as exc:
                summary.add(route, None, f"{call.method} {call.path}: {type(exc).__name__}: {exc}")
                on_answer(summary)
                return None
            summary.add(route, response.status_code, None)
            on_answer(summary)
            return response

        for name, account in ACCOUNTS.items():
            login = await send(Call("POST", "/auth/login", json=account, session=name))
            if login is not None and login.status_code != 200:
                summary.notes.append(
                    f"login as {account['email']} answered {login.status_code}: its requests will get 401 "
                    "(is the demo database seeded? `gateway seed`)"
                )
        plan = mix.plan(seed)
        if requests is not None:
            plan = itertools.islice(plan, requests)
        deadline = time.monotonic() + duration if duration is not None else None

        async def worker() -> None:
            while deadline is None or time.monotonic() < deadline:
                call = next(plan, None)
                if call is None:
                    return
                response = await send(call)
                if call.remember_user and response is not None and response.status_code == 201:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        user = response.json()
                        mix.context.users.append((int(user["id"]), str(user["email"])))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        summary.finished = time.monotonic()
        for client in clients.values():
            await client.aclose()
    return summary


async def _probe(client: httpx.AsyncClient, url: str) -> None:
    try:
        await client.get("/_gateway/health")
    except httpx.HTTPError as exc:
        raise Unreachable(f"cannot reach the gateway at {url}: {type(exc).__name__}: {exc}") from None
