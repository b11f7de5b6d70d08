"""Demo data: deterministic (fixed random seed, timestamps from a fixed base date).

Tests rely on it, so the same call always yields the same rows and the same ids on a
fresh database. Passwords use a deliberately cheap hash: this is demo data.
"""

from __future__ import annotations

import argparse
import os
import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from legacy_flask.db import make_engine
from legacy_flask.models import Base, Order, OrderItem, Product, User

BASE_DATE = datetime(2024, 1, 1, 9, 0, 0)
RANDOM_SEED = 20240101
FAST_HASH = "pbkdf2:sha256:1000"

DEMO_ACCOUNTS = (
    # email, name, role, password
    ("admin@example.com", "Ada Admin", "admin", "admin-password"),
    ("alice@example.com", "Alice Anderson", "customer", "alice-password"),
    ("sam@example.com", "Sam Staff", "staff", "staff-password"),
)
FIRST_NAMES = ("Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
               "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor",
               "Walter", "Yolanda", "Zoe")
LAST_NAMES = ("Baker", "Clark", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
              "Jones", "Kim", "Lopez", "Moreau", "Novak", "Okafor", "Patel")
CATALOGUE = {
    "books": ("Novel", "Cookbook", "Atlas", "Biography", "Poetry Collection"),
    "electronics": ("Headphones", "Charger", "Speaker", "Keyboard", "Webcam"),
    "garden": ("Trowel", "Hose", "Planter", "Seed Kit", "Pruner"),
    "home": ("Lamp", "Blanket", "Mug Set", "Clock", "Cushion"),
    "sports": ("Yoga Mat", "Football", "Water Bottle", "Jump Rope", "Dumbbell"),
    "toys": ("Puzzle", "Kite", "Robot", "Board Game", "Plush Bear"),
}
ADJECTIVES = ("Classic", "Deluxe")
STATUSES = ("pending", "paid", "paid", "shipped", "shipped", "shipped", "cancelled")
USER_COUNT = 50
ORDER_COUNT = 120


Row = dict[str, Any]


class SeedError(RuntimeError):
    pass


def seed(database_url: str | None = None, *, if_empty: bool = False) -> int:
    """Create the tables and fill an empty database; returns the number of users created.

    A database that already has users is left alone: with ``if_empty`` that is a no-op
    (returns 0), without it an error, so demo data never lands on top of real rows.
    """
    url = database_url or os.environ.get("DATABASE_URL", "sqlite:///demo.db")
    engine = make_engine(url)
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            if session.scalar(sa.select(User.id).limit(1)) is not None:
                if if_empty:
                    return 0
                raise SeedError("the database already has users; seed needs an empty one")
            rng = random.Random(RANDOM_SEED)
            users = _insert(session, User, _users(rng))
            products = _insert(session, Product, _products(rng))
            orders = _orders(rng, users, products)
            order_rows = [{k: v for k, v in order.items() if k != "items"} for order in orders]
            order_ids = _ids(session, Order, order_rows)
            items = [
                {**item, "order_id": order_id}
                for order_id, order in zip(order_ids, orders, strict=True)
                for item in order["items"]
            ]
            session.execute(sa.insert(OrderItem), items)
            session.commit()
            return len(users)
    finally:
        engine.dispose()


# Bulk INSERTs (one statement per table, ids returned in row order): the ORM unit of work
# would take several times longer, and every test that seeds pays for it.
def _ids(session: Session, model: type[Base], rows: list[Row]) -> list[int]:
    stmt = sa.insert(model).returning(model.__table__.c.id, sort_by_parameter_order=True)
    return list(session.scalars(stmt, rows))


def _insert(session: Session, model: type[Base], rows: list[Row]) -> list[Row]:
    for row, row_id in zip(rows, _ids(session, model, rows), strict=True):
        row["id"] = row_id
    return rows


def _users(rng: random.Random) -> list[Row]:
    accounts = list(DEMO_ACCOUNTS)
    for n in range(USER_COUNT - len(DEMO_ACCOUNTS)):
        first, last = FIRST_NAMES[n % len(FIRST_NAMES)], LAST_NAMES[n % len(LAST_NAMES)]
        email = f"{first.lower()}.{last.lower()}{n + 1}@example.com"
        accounts.append((email, f"{first} {last}", "customer", "demo-password"))
    hashes: dict[str, str] = {}
    users = []
    for n, (email, name, role, password) in enumerate(accounts):
        if password not in hashes:
            hashes[password] = generate_password_hash(password, method=FAST_HASH)
        created = BASE_DATE + timedelta(days=n * 3, minutes=rng.randrange(24 * 60))
        users.append({
            "email": email,
            "name": name,
            "role": role,
            # every 9th generated customer has left; the demo accounts stay active
            "is_active": not (n >= len(DEMO_ACCOUNTS) and n % 9 == 0),
            "password_hash": hashes[password],
            "created_at": created,
            "updated_at": created + timedelta(days=rng.randrange(30)),
        })
    return users


def _products(rng: random.Random) -> list[Row]:
    products = []
    for category, nouns in CATALOGUE.items():
        for n, (adjective, noun) in enumerate((a, b) for b in nouns for a in ADJECTIVES):
            created = BASE_DATE + timedelta(days=rng.randrange(200), hours=rng.randrange(24))
            products.append({
                "sku": f"{category[:3].upper()}-{n + 1:03d}",
                "name": f"{adjective} {noun}",
                "description": f"A {adjective.lower()} {noun.lower()} from our {category} range.",
                "category": category,
                "price": Decimal(rng.randrange(199, 25000)) / 100,
                # a few sold out, to make in_stock filtering visible
                "stock": 0 if rng.random() < 0.15 else rng.randrange(1, 200),
                "is_active": n != 9,  # one discontinued product per category
                "image_filename": None,
                "created_at": created,
                "updated_at": created + timedelta(days=rng.randrange(60)),
            })
    return products


def _orders(rng: random.Random, users: list[Row], products: list[Row]) -> list[Row]:
    active = [p for p in products if p["is_active"]]
    alice = users[1]
    orders = []
    for n in range(ORDER_COUNT):
        # alice gets every tenth order, so the demo customer account has history
        user = alice if n % 10 == 0 else rng.choice(users)
        created = user["created_at"] + timedelta(days=rng.randrange(1, 120),
                                                 minutes=rng.randrange(24 * 60))
        status = rng.choice(STATUSES)
        items = [
            {"product_id": p["id"], "quantity": rng.randint(1, 5), "unit_price": p["price"]}
            for p in rng.sample(active, rng.randint(1, 4))
        ]
        orders.append({
            "user_id": user["id"],
            "status": status,
            "total": sum((i["unit_price"] * i["quantity"] for i in items), Decimal("0.00")),
            "created_at": created,
            "items": items,
        })
    return orders


def main() -> None:
    parser = argparse.ArgumentParser(description="Create the tables and fill demo data.")
    parser.add_argument("--database-url", help="defaults to $DATABASE_URL or sqlite:///demo.db")
    parser.add_argument("--if-empty", action="store_true",
                        help="do nothing when the database already has users")
    args = parser.parse_args()
    created = seed(args.database_url, if_empty=args.if_empty)
    print(f"seeded {created} users" if created else "database already seeded; nothing done")


if __name__ == "__main__":
    main()
