"""`gateway rollout promote|abort|retry|status` and `gateway audit`, through gateway.cli.main."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.rollout.state import RolloutStore, RuntimeState

MAP = """\
version: 1
routes:
  - {id: users.get, path: '/api/users/<int:id>', methods: [GET], owner: new}
  - {id: products.search, path: /api/products, methods: [GET], owner: legacy, canary: {percent: 10}}
"""
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Runs `gateway ARGS...` against a map in tmp_path and the test's store; returns (code, out, err)."""
    map_path = tmp_path / "migration_map.yaml"
    map_path.write_text(MAP)
    monkeypatch.setenv("GATEWAY_MAP_PATH", str(map_path))
    monkeypatch.setenv("GATEWAY_STORE_URL", db_url)
    monkeypatch.setattr("getpass.getuser", lambda: "alice")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_abort_then_retry_through_the_cli(cli: Run, db_url: str) -> None:
    code, out, _ = cli("rollout", "abort", "users.get", "--reason", "5xx after deploy")
    assert code == 0
    assert out.startswith("users.get: aborted; serving: legacy (recorded as cli:alice in ")
    state = RolloutStore(db_url).states()["users.get"]
    assert (state.state, state.actor, state.reason) == (RuntimeState.ABORTED, "cli:alice", "5xx after deploy")
    assert state.map_sha256 is not None and len(state.map_sha256) == 64

    code, out, _ = cli("rollout", "retry", "users.get", "--actor", "bob")
    assert code == 0 and out == "users.get: retried, it follows the map again; serving: new\n"
    assert RolloutStore(db_url).states() == {}

    code, out, err = cli("rollout", "retry", "users.get")
    assert code == 1 and out == ""
    assert err == (
        "gateway rollout: error: route 'users.get' has no run-time state to retry: "
        "it follows the map (serving: new)\n"
    )


def test_promote_beats_the_canary_and_status_says_who_serves(cli: Run) -> None:
    code, out, _ = cli("rollout", "status", "--json")
    assert code == 0
    before = {r["route_id"]: r for r in json.loads(out)["routes"]}
    assert before["products.search"]["serving"] == "canary 10 %" and before["products.search"]["state"] is None
    assert before["users.get"]["serving"] == "new"

    assert cli("rollout", "promote", "products.search", "--reason", "parity 100 %")[0] == 0
    code, out, _ = cli("rollout", "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ROUTE", "OWNER", "CANARY", "STATE", "SERVING", "SINCE", "ACTOR", "REASON"]
    row = next(line for line in lines if line.startswith("products.search"))
    cells = row.split()
    assert cells[:6] == ["products.search", "legacy", "10", "%", "promoted", "new"]
    assert cells[7] == "cli:alice" and row.endswith("parity 100 %")

    code, out, _ = cli("rollout", "status", "products.search", "--json")
    one = json.loads(out)
    assert code == 0 and one["state"] == "promoted" and one["serving"] == "new" and one["owner"] == "legacy"
    assert [e["kind"] for e in one["audit"]] == ["promote"]
    code, out, _ = cli("rollout", "status", "products.search")
    assert "state:    promoted" in out and "serving:  new" in out and "by cli:alice at " in out


def test_unknown_routes_exit_2_and_say_which_routes_exist(cli: Run) -> None:
    for action in ("promote", "abort", "retry", "status"):
        code, out, err = cli("rollout", action, "nope")
        assert code == 2 and out == ""
        assert err.startswith("gateway rollout: error: no route 'nope' in ")
        assert err.endswith("(its routes: users.get, products.search)\n")


def test_a_store_that_cannot_be_reached_exits_2(cli: Run) -> None:
    code, _, err = cli("rollout", "abort", "users.get", "--store", "postgresql://postgres@127.0.0.1:1/none")
    assert code == 2 and "cannot use the rollout store at postgresql://postgres@127.0.0.1:1/none" in err
    code, _, err = cli("audit", "--store", "mysql://x@localhost/db")
    assert code == 2 and "runs on SQLite or PostgreSQL" in err


def test_audit_lists_every_action_newest_first(cli: Run) -> None:
    cli("rollout", "abort", "users.get", "--reason", "pager")
    cli("rollout", "retry", "users.get", "--actor", "bob")
    cli("rollout", "promote", "products.search")
    code, out, _ = cli("audit", "--json")
    assert code == 0
    entries = json.loads(out)["entries"]
    assert [(e["kind"], e["route_id"], e["actor"]) for e in entries] == [
        ("promote", "products.search", "cli:alice"),
        ("retry", "users.get", "bob"),
        ("abort", "users.get", "cli:alice"),
    ]
    assert entries[2]["summary"] == "users.get aborted by cli:alice: legacy serves it (pager)"
    code, out, _ = cli("audit", "--route", "users.get", "--limit", "1")
    assert code == 0
    (line,) = out.splitlines()
    assert " retry " in line and "users.get retried by bob: it follows the map again (was aborted: pager)" in line
    code, out, _ = cli("audit", "--route", "orders.create")
    assert code == 0 and out == "no audit entries for route 'orders.create'\n"
    assert cli("audit", "--limit", "0")[0] == 2  # a usage error


def test_reading_a_missing_sqlite_store_creates_nothing(cli: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing.db"
    code, out, err = cli("audit", "--store", url)
    assert code == 0 and out == "no audit entries\n" and "does not exist yet" in err
    code, out, _ = cli("rollout", "status", "--store", url, "--json")
    assert code == 0 and all(r["state"] is None for r in json.loads(out)["routes"])
    assert not (tmp_path / "missing.db").exists()
