"""A sticky canary keeps every user on their side across map changes that leave its percentage
and owner alone, behind one port with 1 and with 2 workers (issue 11).

Each user makes two requests back to back, again and again, from the moment the map file is
rewritten until every worker has loaded it and a whole round has run on the new map. Every
request has a connection of its own, so with 2 workers the kernel hands them to either one. A
fallback (the new side failed and legacy stood in) is not a move: its answer says so in
X-Gateway-Fallback, and only a user on the new side can have one.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.rollout.state import RolloutStore, RuntimeState
from tests.e2e.conftest import Server
from tests.e2e.test_metrics_workers import requests_per_worker
from tests.support import wait_until

pytestmark = pytest.mark.e2e

USERS = 100
# the first seconds after a change: the reload, and several polls of the run-time state (1 s)
WINDOW_S = 3.0

# The canary ramps (a state in the store, applied by every poll) but never takes its step
# (an hour's pause): what the poll applies must stay the map's 50 %.
MAP = """\
version: 1
# COMMENT
routes:
  - id: users.get
    path: /api/users/<int:user_id>
    methods: [GET]
    owner: new
  - id: products.get
    path: /api/products/<int:product_id>
    methods: [GET]
    owner: legacy
    canary: {percent: 50, sticky: ["header:X-User-Id"], steps: [60], step_pause_s: 3600}
    guard: {min_samples: 20, max_error_rate: 0.5}
    fallback: {}
    shadow: {sample: 0.0}
"""

CHANGES: list[tuple[str, Callable[[str], str]]] = [
    ("a comment", lambda text: text.replace("# COMMENT", "# products: the canary is at 50 %")),
    ("another route's owner", lambda text: text.replace("    owner: new\n", "    owner: legacy\n", 1)),
    ("this route's shadow sample", lambda text: text.replace("shadow: {sample: 0.0}", "shadow: {sample: 0.5}")),
]


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Users:
    def __init__(self, server: Server) -> None:
        # no keep-alive: each request opens a connection, which either worker may accept
        self.client = httpx.Client(
            base_url=server.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self.side: dict[int, str] = {}
        self.moves: list[str] = []
        self.fallbacks = 0
        self.requests = 0

    def ask(self, user: int) -> tuple[str, str | None]:
        r = self.client.get(f"/api/products/{1 + user % 5}", headers={"X-User-Id": f"user-{user}"})
        self.requests += 1
        assert r.status_code == 200, r.text
        return r.headers["x-served-by"], r.headers.get("x-gateway-fallback")

    def learn_sides(self) -> None:
        for user in range(USERS):
            for _ in range(5):  # a fallback does not say where the user belongs: ask again
                side, fell_back = self.ask(user)
                if fell_back is None:
                    self.side[user] = side
                    break
            assert user in self.side, f"user-{user} got only fallbacks"

    def round(self, label: str) -> None:
        for user in range(USERS):
            for _ in range(2):
                side, fell_back = self.ask(user)
                if fell_back is not None:
                    self.fallbacks += 1
                    # legacy answered for a new side that failed: only a canary user gets there
                    if self.side[user] != "new":
                        self.moves.append(f"{label}: user-{user} of legacy was sent to new (fell back: {fell_back})")
                elif side != self.side[user]:
                    self.moves.append(f"{label}: user-{user} moved {self.side[user]} -> {side}")


def reloads(server: Server, text: str) -> int:
    """How many workers logged loading this map."""
    short = hashlib.sha256(text.encode()).hexdigest()[:12]
    return server.log().count(f"-> {short} (")


@pytest.mark.parametrize("workers", [1, 2])
def test_no_sticky_user_changes_side_across_map_changes_that_keep_percent_and_owner(
    start_server: Callable[..., Server], tmp_path: Path, workers: int
) -> None:
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    server = start_server(MAP, workers=workers, PROMETHEUS_MULTIPROC_DIR=str(metrics))
    users = Users(server)
    with users.client:
        users.learn_sides()
        on_new = sum(side == "new" for side in users.side.values())
        assert 30 <= on_new <= 70, f"{on_new} of {USERS} users on the new side of a 50 % canary"
        text = MAP
        for number, (what, change) in enumerate(CHANGES):
            text = change(text)
            assert text != MAP
            # both ways of saving: an editor's rename, and a truncate-and-write in place
            if number % 2:
                server.map_path.write_text(text)
            else:
                write_atomically(server.map_path, text)
            changed = time.monotonic()
            deadline = changed + 20
            while True:
                loaded = reloads(server, text) >= workers  # checked before the round, which then runs on it
                users.round(f"after changing {what}")
                if loaded and time.monotonic() >= changed + WINDOW_S:
                    break
                assert time.monotonic() < deadline, f"{workers} worker(s) did not all load the map:\n{server.log()}"
    assert users.moves == [], "\n".join(users.moves)
    assert users.requests >= USERS * 2 * 2 * len(CHANGES)
    # the poll applied a stored state all along: the ramp, started by a worker at the map's 50 %
    port = server.url.rsplit(":", 1)[1]
    ramp = RolloutStore(f"sqlite:///{tmp_path}/parity-{port}.db").states()["products.get"]
    assert (ramp.state, ramp.figures["percent"]) == (RuntimeState.RAMPING, 50)
    if workers == 2:  # both workers answered: the test saw both views, whatever they were
        wait_until(lambda: sum(1 for n in requests_per_worker(metrics) if n > 0) == 2, timeout=5,
                   what="requests counted on both workers")
