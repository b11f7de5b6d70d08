"""This feature's mapping of `users` (DDL identical to legacy_flask.models.User)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("admin", "customer", "staff")

# Rows this feature deletes with a user but does not otherwise own; lightweight table
# clauses so they never take part in DDL (the orders feature maps them for real).
orders = sa.table("orders", sa.column("id"), sa.column("user_id"))
order_items = sa.table("order_items", sa.column("order_id"))


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(255), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    role: Mapped[str] = mapped_column(sa.String(20), default="customer")
    is_active: Mapped[bool] = mapped_column(default=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
