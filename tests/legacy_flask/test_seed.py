"""The demo data: deterministic, the same on SQLite and PostgreSQL, never on top of real rows."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.security import check_password_hash

from legacy_flask.models import Base, Order, OrderItem, Product, User
from legacy_flask.seed import SeedError, seed

ROOT = Path(__file__).resolve().parents[2]


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table; password hashes aside, their salts are random by design."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [tuple(row) for row in conn.execute(
                    sa.select(*(c for c in table.c if c.name != "password_hash"))
                    .order_by(table.c.id))]
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def test_seed_fills_the_demo_data(db_url: str) -> None:
    assert seed(db_url) == 50
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            def count(model: type[Base]) -> int:
                return conn.scalar(sa.select(sa.func.count()).select_from(model)) or 0

            assert (count(User), count(Product), count(Order)) == (50, 60, 120)
            categories = conn.execute(
                sa.select(Product.category, sa.func.count()).group_by(Product.category)
            ).all()
            assert sorted(categories) == [(c, 10) for c in
                                          ("books", "electronics", "garden", "home", "sports",
                                           "toys")]
            per_order = Counter(conn.scalars(sa.select(OrderItem.order_id)))
            assert len(per_order) == 120 and set(per_order.values()) <= {1, 2, 3, 4}
            for order in conn.execute(sa.select(Order.id, Order.total)):
                items = conn.execute(sa.select(OrderItem.quantity, OrderItem.unit_price)
                                     .where(OrderItem.order_id == order.id)).all()
                assert order.total == sum(q * p for q, p in items)

            accounts = {u.email: u for u in conn.execute(sa.select(User)).all()}
            admin, alice = accounts["admin@example.com"], accounts["alice@example.com"]
            assert (admin.role, alice.role) == ("admin", "customer")
            assert check_password_hash(admin.password_hash, "admin-password")
            assert check_password_hash(alice.password_hash, "alice-password")
    finally:
        engine.dispose()


def test_seed_is_deterministic_and_identical_across_databases(db_url: str,
                                                               tmp_path: Path) -> None:
    reference = f"sqlite:///{tmp_path}/reference.db"
    seed(reference)
    seed(db_url)
    rows = dump(db_url)
    assert rows == dump(reference)
    assert rows["users"][1][:3] == (2, "alice@example.com", "Alice Anderson")


def test_seed_refuses_a_database_with_users(sqlite_url: str) -> None:
    seed(sqlite_url)
    before = dump(sqlite_url)
    assert seed(sqlite_url, if_empty=True) == 0
    with pytest.raises(SeedError, match="already has users"):
        seed(sqlite_url)
    assert dump(sqlite_url) == before


def test_seed_reads_database_url_from_the_environment(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert seed(if_empty=True) == 50
    assert len(dump(sqlite_url)["users"]) == 50


def test_seed_module_entry_point(sqlite_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": sqlite_url}
    run = [sys.executable, "-m", "legacy_flask.seed"]
    first = subprocess.run(run, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert first.stdout.strip() == "seeded 50 users"
    again = subprocess.run([*run, "--if-empty"], env=env, cwd=ROOT, capture_output=True,
                           text=True, check=True)
    assert again.stdout.strip() == "database already seeded; nothing done"
    assert len(dump(sqlite_url)["orders"]) == 120
