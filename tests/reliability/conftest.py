"""The reliability tests start real `gateway serve` processes with the end-to-end fixtures."""

from tests.e2e.conftest import seeded_db, start_server

__all__ = ["seeded_db", "start_server"]
