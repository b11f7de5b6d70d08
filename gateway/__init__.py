"""Incremental Flask-to-FastAPI migration gateway."""

__version__ = "0.1.0"
