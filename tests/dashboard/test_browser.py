"""The dashboard in a real browser: headless Chromium, driven by Selenium, against a real
`gateway serve` that has served a mix of traffic over every route of the shipped map.

Needs Debian's chromium and chromium-driver (`make browser-deps`); without them the test is
skipped, except under CI=true, where it fails. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.map_loader import load_map
from tests.conftest import IN_CI
from tests.e2e.conftest import GATEWAY, ROOT, Server
from tests.support import wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("GATEWAY_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "browser-test-token"


def _missing() -> str | None:
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if absent:
        return f"{' and '.join(absent)} not found: run `make browser-deps` (Debian's chromium, chromium-driver)"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    problem = _missing()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI=true requires the browser test to run: {problem}")
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def drive_traffic(server: Server) -> None:
    """`gateway demo-traffic`, as a user gives the demo traffic (`make demo`): a realistic mix
    over every route of the shipped map. The products routes are shadowed by a native side
    that differs, so mismatches and their samples are stored."""
    run = subprocess.run(
        [*GATEWAY, "demo-traffic", "--url", server.url, "--requests", "300", "--seed", "5", "--json"],
        cwd=ROOT, env={**os.environ, "CI": "true"}, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["by_class"]["5xx"] == 0 and summary["by_class"]["error"] == 0, summary


def parity_ready(server: Server, shadowed: set[str]) -> bool:
    r = httpx.get(server.url + "/_gateway/api/parity", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    routes = {route["route_id"]: route for route in r.json()["routes"]}
    return (
        all(routes.get(route_id, {}).get("samples") for route_id in shadowed)
        and routes["products.get"]["mismatched"] > 0 and routes["products.get"]["stored_samples"] > 0
    )


def severe(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1600, min(max(int(height) + 40, 600), 6000))
    driver.save_screenshot(str(ARTIFACTS / name))
    driver.set_window_size(1600, 1000)


def test_the_dashboard_in_a_real_browser(browser: Any, start_server: Callable[..., Server]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    loaded = load_map(ROOT / "migration_map.yaml")
    entries = loaded.map.routes
    rules = {e.id: loaded.map.shadow_of(e) for e in entries}
    shadowed = {e.id for e in entries if any(rules[e.id].shadows(m) for m in e.methods or ("GET",))}
    native = sum(loaded.map.owner_of(e).value == "new" for e in entries)
    assert {"products.get", "products.list"} <= shadowed
    server = start_server(
        GATEWAY_ADMIN_TOKEN=TOKEN,
        GATEWAY_NATIVE_APP="tests.shadow.divergent_native:create_app",
        GATEWAY_STORE_FLUSH_INTERVAL="0.2",
    )
    drive_traffic(server)
    wait_until(lambda: parity_ready(server, shadowed), timeout=20, step=0.2, what="parity results stored")

    wait = WebDriverWait(browser, 15)
    browser.get(server.url + "/_gateway/")
    field = wait.until(ec.presence_of_element_located((By.ID, "token")))
    assert browser.find_elements(By.ID, "routes") == []  # nothing shown before signing in
    field.send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "routes")))
    refresh = browser.find_element(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]').get_attribute("content")
    assert refresh == "10"
    logs = severe(browser)
    # the same page without its 10 s reload, so a slow run never loses the elements it reads
    browser.get(server.url + "/_gateway/?refresh=0")
    wait.until(ec.presence_of_element_located((By.ID, "routes")))
    assert browser.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]') == []
    screenshot(browser, "dashboard.png")

    assert browser.find_element(By.ID, "progress").text == f"{native} of {len(entries)} endpoints native"
    for entry in entries:
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-route="{entry.id}"]')
        latency = row.find_element(By.CSS_SELECTOR, "td.lat")
        assert " ms" in latency.text and latency.find_elements(By.TAG_NAME, "svg"), (entry.id, latency.text)
        parity = row.find_element(By.CSS_SELECTOR, "td.parity")
        if entry.id in shadowed:
            assert parity.get_attribute("data-match-rate") is not None, (entry.id, parity.text)
            assert "%" in parity.text and "compared" in parity.text, (entry.id, parity.text)
        else:
            assert parity.text == "not shadowed", (entry.id, parity.text)
    mismatching = browser.find_element(By.CSS_SELECTOR, 'tr[data-route="products.get"]')
    assert float(mismatching.find_element(By.CSS_SELECTOR, "td.parity").get_attribute("data-match-rate")) < 1
    assert "body.name" in mismatching.text  # the renamed field is the top differing one

    mismatching.find_element(By.PARTIAL_LINK_TEXT, "diff samples").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.sbs")))
    assert browser.current_url.endswith("/_gateway/routes/products.get")
    logs += severe(browser)
    screenshot(browser, "dashboard-route.png")
    side_by_side = browser.find_element(By.CSS_SELECTOR, "table.sbs")
    headings = [th.text for th in side_by_side.find_elements(By.TAG_NAME, "th")]
    assert headings == ["legacy (owner)", "new (candidate)"]
    changed = side_by_side.find_elements(By.CSS_SELECTOR, "tr.changed, tr.removed, tr.added")
    assert changed, "no differing line is marked"
    cells = changed[0].find_elements(By.TAG_NAME, "td")
    assert len(cells) == 2 and cells[0].location["x"] < cells[1].location["x"]  # two columns, side by side
    assert any('"name"' in c.text for r in changed for c in r.find_elements(By.TAG_NAME, "td"))

    browser.find_element(By.CSS_SELECTOR, "header form button").click()  # log out
    wait.until(ec.presence_of_element_located((By.ID, "token")))
    logs += severe(browser)
    assert logs == [], logs
