"""Byte-level junk in the map file: `gateway check-map` names file, line and problem and exits 1
(never a traceback), and a running gateway refuses the file, counts it and serves on with its
last good map. A UTF-8 byte order mark and CR or CRLF line ends are not junk: such maps load."""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import map_text
from gateway.cli import main
from gateway.map_loader import MAX_MAP_BYTES
from gateway.metrics import GatewayMetrics
from gateway.reloader import MapHolder

GOOD = "version: 1\nroutes:\n  - {id: good, path: /good, owner: new}\n"
NOT_PRINTABLE = "is not allowed (YAML text has no control characters but tab, line feed and carriage return)"
BOM = codecs.BOM_UTF8

# (content, line, message): the exact problem a user sees for each kind of junk
JUNK = [
    pytest.param(b"\x00\x01\x02version: 1\n", 1, f"invalid YAML: character U+0000 at column 1 {NOT_PRINTABLE}",
                 id="nul-bytes-first"),
    pytest.param(b"version: 1\nroutes: []\n# a\x00b\n", 3, f"invalid YAML: character U+0000 at column 4 {NOT_PRINTABLE}",
                 id="nul-byte-in-a-comment"),
    pytest.param(b"version: 1\x1b[0m\n", 1, f"invalid YAML: character U+001B at column 11 {NOT_PRINTABLE}",
                 id="escape-sequence"),
    pytest.param("version: 1\n".encode("utf-16-le"), 1, f"invalid YAML: character U+0000 at column 2 {NOT_PRINTABLE}",
                 id="utf-16-without-bom"),
    pytest.param(codecs.BOM_UTF16_LE + "version: 1\n".encode("utf-16-le"), 1,
                 "map file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8", id="utf-16-le-bom"),
    pytest.param(codecs.BOM_UTF16_BE + "version: 1\n".encode("utf-16-be"), 1,
                 "map file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8", id="utf-16-be-bom"),
    pytest.param(codecs.BOM_UTF32_LE + "version: 1\n".encode("utf-32-le"), 1,
                 "map file is UTF-32 (it starts with a UTF-32 byte order mark); save it as UTF-8", id="utf-32-bom"),
    pytest.param(b"version: 1\nroutes: []\n# caf\xe9\n", 3,
                 "map file is not valid UTF-8 (byte 0xE9 at column 6); save it as UTF-8", id="latin-1"),
    pytest.param(b"version: 1\rroutes: []\r# caf\xe9\r", 3,
                 "map file is not valid UTF-8 (byte 0xE9 at column 6); save it as UTF-8", id="latin-1-cr-only"),
    pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF", 1,
                 "map file is not valid UTF-8 (byte 0xFF at column 1); save it as UTF-8", id="binary"),
    pytest.param(b"version: 1\nroutes:\n\t- {id: a, path: /a}\n", 3,
                 "invalid YAML: found character '\\t' that cannot start any token "
                 "(indent with spaces: YAML does not allow tabs there)", id="tab-indent"),
    pytest.param(b"version: 1\rroutes:\r  - {id: a, path: /a, ownr: new}\r", 3, "unknown key 'ownr' in routes[0]",
                 id="cr-only-line-ends"),
    pytest.param(b"version: 1\r\nroutes:\r\n  - {id: a, path: /a, ownr: new}\r\n", 3, "unknown key 'ownr' in routes[0]",
                 id="crlf-line-ends"),
    pytest.param(BOM + b"version: 2\n", 1, "version: unsupported map version 2 (this gateway reads version 1)",
                 id="utf-8-bom-then-a-bad-map"),
    pytest.param(b"", 1, "the map must be a mapping with 'version' and 'routes'; the file is empty", id="empty"),
    pytest.param(b"\n  \n\n", 1, "the map must be a mapping with 'version' and 'routes'; the file is empty",
                 id="blank-lines"),
    pytest.param(BOM, 1, "the map must be a mapping with 'version' and 'routes'; the file is empty", id="bom-only"),
    pytest.param(b"# version: 1\n# routes: []\n", 1,
                 "the map must be a mapping with 'version' and 'routes'; the file holds only comments",
                 id="only-comments"),
    pytest.param(b"version: 1\n? [a, b]\n: c\n", 2, "invalid YAML: a key must be a plain value, not a list or a mapping",
                 id="list-as-key"),
]

# loads all the same: YAML skips a UTF-8 BOM and reads CR and CRLF as line breaks
FINE = [
    pytest.param(BOM + GOOD.encode(), id="utf-8-bom"),
    pytest.param(GOOD.replace("\n", "\r").encode(), id="cr-only-line-ends"),
    pytest.param(GOOD.replace("\n", "\r\n").encode(), id="crlf-line-ends"),
]


@pytest.fixture(autouse=True, params=["libyaml", "pure-python"])
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Junk reads alike on libyaml's parser and on PyYAML's own, the fallback without libyaml."""
    if request.param == "libyaml" and not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(map_text, "LIBYAML", request.param == "libyaml")
    return str(request.param)


def check_map(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str, str]:
    code = main(["check-map", "--no-apps", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def holder(tmp_path: Path) -> MapHolder:
    live = tmp_path / "migration_map.yaml"
    live.write_text(GOOD)
    held = MapHolder(live, GatewayMetrics())
    held.load_initial()
    return held


def reloads(holder: MapHolder) -> tuple[float, float]:
    get = holder.metrics.registry.get_sample_value
    return (get("gateway_map_reloads_total", {"result": "ok"}) or 0,
            get("gateway_map_reloads_total", {"result": "error"}) or 0)


def assert_refused(holder: MapHolder, error: str) -> None:
    good = holder.loaded
    result = holder.check()
    assert result is not None and not result.ok
    assert result.error == error
    assert holder.loaded is good and holder.table is not None
    assert holder.table.lookup("GET", "/good").id == "good"  # the last good map serves on
    assert reloads(holder) == (1, 1)
    assert holder.check() is None  # the same junk is reported once, not on every poll
    assert reloads(holder) == (1, 1)


@pytest.mark.parametrize(("content", "line", "message"), JUNK)
def test_check_map_names_line_and_problem_of_junk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, line: int, message: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(content)
    assert check_map(capsys, path) == (1, "", f"{path}:{line}: error: {message}\n")


@pytest.mark.parametrize(("content", "line", "message"), JUNK)
def test_reloader_keeps_the_last_good_map_through_junk(
    holder: MapHolder, content: bytes, line: int, message: str
) -> None:
    holder.path.write_bytes(content)
    assert_refused(holder, f"{holder.path}:{line}: {message}")


@pytest.mark.parametrize("content", FINE)
def test_bom_and_other_line_ends_load(
    holder: MapHolder, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(content)
    code, out, err = check_map(capsys, path)
    assert (code, err) == (0, "") and out.startswith(f"ok: {path}: 1 routes, sha256 ")
    holder.path.write_bytes(content.replace(b"owner: new", b"owner: legacy"))
    result = holder.check()
    assert result is not None and result.ok
    assert holder.table is not None and holder.table.lookup("GET", "/good").owner.value == "legacy"
    assert holder.check() is None  # hashed as read: an unchanged file is not parsed again


# --- the file itself is wrong: there is no line to name ---------------------------------------

def make_directory(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


def make_fifo(path: Path) -> None:  # opening it to read would wait for a writer forever
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def make_huge(path: Path) -> None:  # sparse: 50 MB long, nothing on disk
    with path.open("wb") as f:
        f.truncate(50 * 1024 * 1024)


def make_missing(path: Path) -> None:
    path.unlink(missing_ok=True)


def make_unreadable(path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file: permissions cannot be tested")
    path.write_text(GOOD.replace("new", "legacy"))
    path.chmod(0)


WHOLE_FILE = [
    pytest.param(make_directory, "is a directory, not a map file", id="directory"),
    pytest.param(make_fifo, "is not a regular file (a map is a YAML file)", id="fifo"),
    pytest.param(make_huge, f"map is larger than {MAX_MAP_BYTES} bytes", id="50-mb"),
    pytest.param(make_missing, "map file not found", id="missing"),
    pytest.param(make_unreadable, "cannot read map file: Permission denied", id="unreadable"),
]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path opened through pathlib while the test runs, so a test can see what was read."""
    opened: list[Path] = []
    real_open = Path.open

    def spy(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    return opened


@pytest.mark.parametrize(("make", "message"), WHOLE_FILE)
def test_check_map_refuses_what_is_not_a_readable_map_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opened: list[Path],
    make: Callable[[Path], None], message: str,
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(GOOD)
    make(path)
    opened.clear()
    assert check_map(capsys, path) == (1, "", f"{path}: error: {message}\n")
    if make is not make_unreadable:
        assert path not in opened  # refused from its stat: a 50 MB file is never read


@pytest.mark.parametrize(("make", "message"), WHOLE_FILE)
def test_reloader_keeps_the_last_good_map_when_the_file_cannot_be_read(
    holder: MapHolder, make: Callable[[Path], None], message: str
) -> None:
    make(holder.path)
    assert_refused(holder, f"{holder.path}: {message}; keeping the last good map")


@pytest.fixture
def vanishing(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make a file disappear between the stat that finds it and the open that reads it."""

    def arm(target: Path) -> None:
        real_stat = Path.stat

        def stat_then_delete(self: Path, **kwargs: Any) -> os.stat_result:
            found = real_stat(self, **kwargs)
            if self == target:
                os.unlink(target)
            return found

        monkeypatch.setattr(Path, "stat", stat_then_delete)

    return arm


def test_check_map_reports_a_file_that_vanishes_while_it_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vanishing: Callable[[Path], None]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(GOOD)
    vanishing(path)
    assert check_map(capsys, path) == (1, "", f"{path}: error: map file not found\n")


def test_reloader_keeps_the_last_good_map_when_the_file_vanishes_while_it_is_read(
    holder: MapHolder, vanishing: Callable[[Path], None]
) -> None:
    holder.path.write_text(GOOD.replace("new", "legacy"))
    vanishing(holder.path)
    assert_refused(holder, f"{holder.path}: map file not found; keeping the last good map")


# a new process parses as installed, whatever this one's fixture chose: one run, not one per parser
@pytest.mark.parametrize("yaml_parser", ["as-installed"], indirect=True)
def test_the_installed_command_on_the_issue_s_file(tmp_path: Path) -> None:
    # the report as filed: printf '\x00\x01\x02version: 1\n' > m.yaml; gateway check-map m.yaml
    (tmp_path / "m.yaml").write_bytes(b"\x00\x01\x02version: 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    gateway = Path(sys.executable).with_name("gateway")
    done = subprocess.run([str(gateway), "check-map", "m.yaml"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"m.yaml:1: error: invalid YAML: character U+0000 at column 1 {NOT_PRINTABLE}\n"
