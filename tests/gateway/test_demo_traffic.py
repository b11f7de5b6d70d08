"""The demo traffic mix: every mapped route covered first, reproducible draws, clear failures."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.demo_traffic import CATALOGUE, Mix, sample_path
from gateway.map_loader import load_map, parse_map

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shipped() -> Mix:
    return Mix(load_map(ROOT / "migration_map.yaml"))


def test_the_first_round_hits_every_route_of_the_shipped_map_once(shipped: Mix) -> None:
    first = list(itertools.islice(shipped.plan(1), len(shipped.first_round)))
    assert [shipped.route_of(call) for call in first] == shipped.route_ids
    assert shipped.not_exercised == []


def test_the_mix_is_mostly_reads_with_some_unmapped_legacy_pages(shipped: Mix) -> None:
    calls = list(itertools.islice(shipped.plan(7), 2000))
    reads = sum(call.method == "GET" for call in calls) / len(calls)
    assert 0.65 < reads < 0.9
    assert {"GET", "POST", "PATCH", "PUT", "DELETE"} <= {call.method for call in calls}
    assert sum(shipped.route_of(call) == "unmapped" for call in calls) > 100
    writes = [call for call in calls if call.method in {"POST", "PUT", "PATCH"}]
    assert all(call.json is not None or call.form is not None for call in writes)


def test_the_same_seed_draws_the_same_mix(shipped: Mix) -> None:
    def shape(mix: Mix, seed: int) -> list[tuple[str, str, object]]:
        return [(c.method, c.path, c.params) for c in itertools.islice(mix.plan(seed), 300)]

    other = Mix(load_map(ROOT / "migration_map.yaml"))
    assert shape(shipped, 3) == shape(other, 3)
    assert shape(shipped, 3) != shape(shipped, 4)


def test_a_route_the_catalogue_does_not_know_gets_a_generated_get_or_a_note() -> None:
    mix = Mix(parse_map("""\
version: 1
routes:
  - {id: reports.get, path: '/api/reports/<int:report_id>/<name>.csv', methods: [GET], owner: legacy}
  - {id: reports.make, path: /api/reports, methods: [POST], owner: legacy}
  - {id: products.get, path: '/api/products/<int:product_id>', methods: [GET], owner: new}
"""))
    first = [(call.method, call.path) for call in itertools.islice(mix.plan(1), len(mix.first_round))]
    assert first[0] == ("GET", "/api/reports/1/demo.csv")
    assert mix.route_of(mix.first_round[1].make(random.Random(1), mix.context)) == "products.get"
    assert mix.not_exercised == ["reports.make (POST /api/reports)"]


def test_sample_path_fills_both_syntaxes() -> None:
    assert sample_path("/a/<int:x>/{y}/<uuid:z>/<path:rest>") == (
        "/a/1/demo/00000000-0000-0000-0000-000000000000/demo"
    )


def test_catalogue_names_are_unique() -> None:
    names = [t.name for t in CATALOGUE]
    assert len(names) == len(set(names))


def test_an_unreachable_gateway_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo-traffic", "--url", "http://127.0.0.1:9", "--requests", "5",
                 "--map", str(ROOT / "migration_map.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("gateway demo-traffic: error: cannot reach the gateway at http://127.0.0.1:9")


def test_requests_and_duration_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-traffic", "--requests", "5", "--duration", "1"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
