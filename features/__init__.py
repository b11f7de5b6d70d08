"""Migrated FastAPI features; `features.main:create_app` is the composition root."""
