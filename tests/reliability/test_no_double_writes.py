"""A write shadowed with `unsafe: rollback` lands once, however many run at the same time.

Against a real `gateway serve`: 200 product creates, 32 at a time, each with its own SKU, as
the admin. The candidate runs each one first in a transaction that is always rolled back,
then the owner runs it for real. Afterwards the demo database (read directly) has exactly
200 new rows, one per SKU; had a candidate's insert survived, its owner would have answered
409 (the SKU taken) or a second row would exist. The parity store shows the 200 comparisons.
Both ways round: legacy owning with the new side shadowing, and the reverse.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from gateway.map_loader import load_map
from gateway.map_schema import Owner
from tests.e2e.conftest import ROOT, Server
from tests.support import wait_until

pytestmark = pytest.mark.e2e

CREATES = 200
CONCURRENCY = 32
ADMIN = {"email": "admin@example.com", "password": "admin-password"}
SHIPPED = ROOT / "migration_map.yaml"


def the_shipped_entry_shadows_with_rollback() -> str:
    """The shipped map, as is: its products.create is legacy-owned and shadowed with rollback."""
    text = SHIPPED.read_text()
    loaded = load_map(SHIPPED)
    entry = next(e for e in loaded.map.routes if e.id == "products.create")
    rules = loaded.map.shadow_of(entry)
    assert (loaded.map.owner_of(entry), rules.unsafe, rules.sample) == (Owner.LEGACY, "rollback", 1.0)
    return text


def patient(text: str) -> str:
    """The shipped map with a longer shadow timeout on products.create: 32 writers queue for
    SQLite's one write lock, and a candidate that waited past 2 s would be counted as an
    error instead of compared."""
    old = "      unsafe: rollback\n"
    assert text.count(old) == 1
    return text.replace(old, old + "      timeout_ms: 30000\n")


def owned_by_new(text: str) -> str:
    old = "  - id: products.create\n    path: /api/products\n    methods: [POST]\n    owner: legacy\n"
    assert old in text
    return text.replace(old, old.replace("owner: legacy", "owner: new"))


async def create_all(server: Server, prefix: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        login = await client.post("/auth/login", json=ADMIN)
        assert login.status_code == 200, login.text
        gate = asyncio.Semaphore(CONCURRENCY)

        async def create(i: int) -> httpx.Response:
            body = {"sku": f"{prefix}-{i:04d}", "name": f"Load {i}", "price": 9.99, "category": "load"}
            async with gate:
                return await client.post("/api/products", json=body)

        return await asyncio.gather(*(create(i) for i in range(CREATES)))


def route_counts(store: Path, route_id: str) -> dict[str, int]:
    if not store.exists():
        return {}
    engine = sa.create_engine(f"sqlite:///{store}")
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("parity_routes"):
                return {}
            row = conn.execute(
                sa.text("SELECT compared, exact_matches, candidate_errors FROM parity_routes WHERE route_id = :r"),
                {"r": route_id},
            ).one_or_none()
            skips = conn.execute(
                sa.text("SELECT reason, n FROM parity_skips WHERE route_id = :r"), {"r": route_id}
            ).all()
    finally:
        engine.dispose()
    counts = dict(row._mapping) if row is not None else {}
    return counts | {f"skipped:{reason}": n for reason, n in skips}


@pytest.mark.parametrize(
    ("owner", "map_of"),
    [("legacy", lambda: patient(the_shipped_entry_shadows_with_rollback())),
     ("new", lambda: patient(owned_by_new(the_shipped_entry_shadows_with_rollback())))],
    ids=["legacy-owns", "new-owns"],
)
def test_concurrent_rollback_shadowed_creates_land_exactly_once(
    start_server: Callable[..., Server], tmp_path: Path, owner: str, map_of: Callable[[], str]
) -> None:
    store = tmp_path / "rollback-parity.db"
    server = start_server(map_of(), GATEWAY_STORE_URL=f"sqlite:///{store}", GATEWAY_SHADOW_QUEUE_SIZE="1000")
    demo = sa.create_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    with demo.connect() as conn:
        before = conn.scalar(sa.text("SELECT count(*) FROM products"))
    prefix = f"DW-{owner}"

    answers = asyncio.run(create_all(server, prefix))

    statuses = Counter((r.status_code, r.headers.get("x-served-by")) for r in answers)
    assert statuses == {(201, owner): CREATES}, [r.text for r in answers if r.status_code != 201][:3]
    with demo.connect() as conn:
        after = conn.scalar(sa.text("SELECT count(*) FROM products"))
        skus = conn.execute(
            sa.text("SELECT sku, count(*) FROM products WHERE sku LIKE :p GROUP BY sku"), {"p": f"{prefix}-%"}
        ).all()
        ids = {r.json()["id"] for r in answers}
        stored_ids = set(conn.scalars(sa.text("SELECT id FROM products WHERE sku LIKE :p"), {"p": f"{prefix}-%"}))
    demo.dispose()
    assert after - before == CREATES
    assert len(skus) == CREATES and all(n == 1 for _, n in skus)
    assert ids == stored_ids  # the rows the clients were told about, and no others

    # every create was compared (the candidate ran, in its rolled-back transaction)
    def all_compared() -> bool:
        counts = route_counts(store, "products.create")
        return counts.get("compared", 0) + counts.get("candidate_errors", 0) >= CREATES

    wait_until(all_compared, timeout=30, what="200 comparisons in the parity store")
    counts = route_counts(store, "products.create")
    assert counts == {"compared": CREATES, "exact_matches": CREATES, "candidate_errors": 0}, counts
