"""The end-to-end fixtures (a real `gateway serve` on a seeded demo database), for the browser test."""

from tests.e2e.conftest import seeded_db, start_server  # noqa: F401  (fixtures, used by name)
