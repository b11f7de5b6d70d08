"""The bundled legacy Flask app; its API contract is README.md."""

from __future__ import annotations

from legacy_flask.app import create_app

__all__ = ["create_app"]
