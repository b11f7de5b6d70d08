"""A corpus of broken maps: each one is refused with a message naming the problem and its line,
by the loader, by `gateway check-map`, and by a running gateway, which keeps its last good map.

Each file in maps/ starts with `# expect line N: <text>`: the line the error must point at and
a piece of its message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.map_loader import MAX_MAP_BYTES, MapError, load_map
from gateway.metrics import GatewayMetrics
from gateway.reloader import MapHolder

CORPUS = sorted((Path(__file__).parent / "maps").glob("*.yaml"))
EXPECT = re.compile(r"# expect line (?P<line>\d+): (?P<text>.+)")
GOOD = "version: 1\nroutes:\n  - {id: good, path: /good, owner: new}\n"


def expectation(path: Path) -> tuple[int, str]:
    m = EXPECT.fullmatch(path.read_text().splitlines()[0])
    assert m, f"{path.name}: first line must be '# expect line N: text'"
    return int(m["line"]), m["text"]


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_the_loader_names_problem_and_line(path: Path) -> None:
    line, text = expectation(path)
    with pytest.raises(MapError) as caught:
        load_map(path)
    found = [(p.line, p.message) for p in caught.value.problems]
    assert any(ln == line and text in message for ln, message in found), found


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_check_map_prints_file_line_and_problem(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line, text = expectation(path)
    assert main(["check-map", "--no-apps", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{line}: error: " in err and text in err, err
    assert "Traceback" not in err


def test_a_running_gateway_keeps_its_map_through_every_broken_one(tmp_path: Path) -> None:
    live = tmp_path / "migration_map.yaml"
    live.write_text(GOOD)
    metrics = GatewayMetrics()
    holder = MapHolder(live, metrics)
    holder.load_initial()
    good = holder.loaded
    assert good is not None
    for path in CORPUS:
        line, text = expectation(path)
        live.write_bytes(path.read_bytes())
        result = holder.check()
        assert result is not None and not result.ok, path.name
        assert f":{line}: " in (result.error or "") and text in (result.error or ""), (path.name, result.error)
        assert holder.loaded is good  # still serving the last good map
        assert holder.table is not None and holder.table.lookup("GET", "/good").id == "good"
    assert metrics.map_reloads.labels("error")._value.get() == len(CORPUS)


def test_a_huge_map_is_refused_unread(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text(GOOD + "#" * (MAX_MAP_BYTES + 1) + "\n")
    with pytest.raises(MapError, match=f"map is larger than {MAX_MAP_BYTES} bytes"):
        load_map(huge)
