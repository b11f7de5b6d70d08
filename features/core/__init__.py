"""Shared infrastructure for every feature. Nothing here imports a feature."""
