"""The fast subset of `make compat` in `make test`: flaskr's own suite, direct and through the gateway.

A regression in the bridge, the remote client or the dispatcher shows up here as a test of
Flask's tutorial app that passes directly and fails through the gateway.
"""

from __future__ import annotations

import zipfile

import pytest

from tests.compat.run import run_app
from tests.compat.venvs import build_wheel

pytestmark = pytest.mark.compat


def test_flaskr_passes_through_the_gateway_in_process_and_remote_as_directly() -> None:
    result = run_app("flaskr", ("direct", "inprocess", "remote"), build_wheel())

    assert result.moved_pins == []
    assert result.problems == []
    direct = result.runs["direct"]
    assert direct.count("passed") == len(direct.outcomes) == 24
    assert result.runs["inprocess"].outcomes == direct.outcomes  # every test, not only the count
    unexplained = [d for d in result.differences if not d.inherent]
    assert unexplained == []
    # the two remote differences are the two tests that read the request's session afterwards
    assert sorted(d.test for d in result.differences) == [
        "tests.test_auth::test_login",
        "tests.test_auth::test_logout",
    ]


def test_the_wheel_installs_the_gateway_and_nothing_named_like_a_user_s_package() -> None:
    # the demo apps run from the checkout: as top-level `features` and `legacy_flask` packages
    # they would land in the legacy app's virtualenv beside (or over) packages of its own
    with zipfile.ZipFile(build_wheel()) as wheel:
        tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"gateway"}
