"""The app's blueprints, registered by the factory in one place."""

from __future__ import annotations

from flask import Flask

from legacy_flask.views import auth, orders, pages, products, users


def register(app: Flask) -> None:
    for module in (users, products, orders, auth, pages):
        app.register_blueprint(module.bp)
