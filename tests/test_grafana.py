"""The Prometheus + Grafana deployment: the dashboard only charts what the gateway exports,
and docker-compose.yml provisions it (Docker does not run here: checked by inspection)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from gateway.metrics import GatewayMetrics

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gateway.json"
PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "gateway.yml"
DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"

METRIC = re.compile(r"\bgateway_[a-z0-9_]+")
SELECTOR = re.compile(r"\b(gateway_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# labels Prometheus adds on scrape, and the bucket label of histograms
SCRAPE_LABELS = {"instance", "job", "le"}

# The series the issue asks the dashboard to chart, as Prometheus stores them.
CHARTED = {
    "gateway_requests_total",
    "gateway_request_duration_seconds_bucket",
    "gateway_shadow_comparisons_total",
    "gateway_shadow_skipped_total",
    "gateway_fallbacks_total",
    "gateway_rollbacks_total",
    "gateway_overrides_total",
    "gateway_map_reloads_total",
    "gateway_map_info",
    "gateway_in_flight_requests",
    "gateway_legacy_threads",
    "gateway_legacy_threads_busy",
    "gateway_routes",
}

SUFFIXES = {
    "counter": ["_total"],
    "histogram": ["_bucket", "_sum", "_count"],
    "summary": ["", "_sum", "_count"],
    "info": ["_info"],
}


def exported() -> dict[str, set[str]]:
    """Series name -> label names, from the metrics the gateway really registers."""
    metrics = GatewayMetrics()
    # the map gauge has its labels once set, as the gateway does on loading its first map
    metrics.serving_map("0" * 64, 0)
    labels: dict[str, set[str]] = {}
    for wrapper in vars(metrics).values():
        if isinstance(wrapper, MetricWrapperBase):
            labels[wrapper._name] = set(wrapper._labelnames)
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        names = {family.name + suffix for suffix in SUFFIXES.get(family.type, [""])}
        known = labels.get(family.name, set())
        for sample in family.samples:
            known |= set(sample.labels) - {"le", "quantile"}
        for name in names:
            series[name] = set(known)
    return series


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if panel["type"] == "row":
            # a collapsed row keeps its panels inside it
            yield from walk(panel.get("panels", []))
        else:
            yield panel


def panels() -> list[dict[str, Any]]:
    return list(walk(dashboard()["panels"]))


def exprs() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def yaml_file(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def services() -> dict[str, Any]:
    return dict(yaml_file(ROOT / "docker-compose.yml")["services"])


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts."""
    pairs = (volume.split(":")[:2] for volume in service["volumes"])
    return {container: host for host, container in pairs}


def test_the_dashboard_parses_and_is_the_migration_gateway_one() -> None:
    board = dashboard()
    assert board["uid"] == "migration-gateway"
    assert 36 <= board["schemaVersion"] <= 41
    nested = [panel for row in board["panels"] if row["type"] == "row" for panel in row["panels"]]
    ids = [panel["id"] for panel in board["panels"] + nested]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert any(p["type"] == "row" and p["collapsed"] and p["panels"] for p in board["panels"])


def test_every_panel_queries_the_provisioned_prometheus() -> None:
    uid = yaml_file(DATASOURCE)["datasources"][0]["uid"]
    assert panels()
    for panel in panels():
        assert panel["type"] in {"timeseries", "stat", "table"}, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert METRIC.search(target["expr"]), f"{panel['title']}: {target['expr']}"


def test_every_query_names_a_metric_the_gateway_exports() -> None:
    series = exported()
    used = {name for expr in exprs() for name in METRIC.findall(expr)}
    variable = dashboard()["templating"]["list"][0]["definition"]
    used |= set(METRIC.findall(variable))
    missing = sorted(used - set(series))
    assert not missing, f"the dashboard queries series gateway.metrics does not export: {missing}"
    assert used >= CHARTED, f"not charted: {sorted(CHARTED - used)}"


def test_every_label_a_query_uses_is_one_of_its_metric() -> None:
    series = exported()
    for expr in exprs():
        names = METRIC.findall(expr)
        for name, matchers in SELECTOR.findall(expr):
            for label in MATCHER.findall(matchers):
                assert label in series.get(name, set()) | SCRAPE_LABELS, f"{name} has no {label}: {expr}"
        available = set().union(*(series.get(name, set()) for name in names)) | SCRAPE_LABELS
        for grouping in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                assert label in available, f"no metric of {expr!r} has the label {label}"


def test_latency_of_legacy_and_new_shares_one_panel_per_route() -> None:
    variable = dashboard()["templating"]["list"][0]
    assert variable["name"] == "route"
    assert variable["definition"] == "label_values(gateway_requests_total, route)"
    assert variable["multi"] and variable["includeAll"]
    [latency] = [panel for panel in panels() if panel.get("repeat") == "route"]
    quantiles = set()
    for target in latency["targets"]:
        expr = target["expr"]
        quantile = re.match(r"histogram_quantile\((0\.\d+),", expr)
        assert quantile, expr
        quantiles.add(quantile[1])
        assert "by (le, backend)" in expr
        assert 'gateway_request_duration_seconds_bucket{role="primary",route=~"$route"}' in expr
    assert quantiles == {"0.5", "0.95", "0.99"}


def test_the_issue_panels_are_there() -> None:
    titles = {panel["title"] for panel in panels()}
    assert {
        "Migration progress",
        "Request rate by backend",
        "Error rate by backend",
        "Parity % by route",
        "Shadow volume by result",
        "Shadow skips by reason",
        "Fallbacks by route and reason",
        "Rollbacks by route",
        "Overrides",
        "Map reloads by result",
        "Map now serving",
        "In-flight requests by backend",
        "Legacy thread pools: busy / size",
    } <= titles
    progress = next(panel for panel in panels() if panel["title"] == "Migration progress")
    assert 'gateway_routes{owner="new"}' in progress["targets"][0]["expr"]
    [parity] = [panel for panel in panels() if panel["title"] == "Parity % by route"]
    assert 'result="match"' in parity["targets"][0]["expr"]
    assert 'result=~"match|diff"' in parity["targets"][0]["expr"]


def test_compose_provisions_grafana_with_the_datasource_and_the_dashboard() -> None:
    grafana = services()["grafana"]
    mounted = mounts(grafana)
    assert mounted["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provider = yaml_file(PROVIDER)["providers"][0]
    assert provider["type"] == "file"
    dashboards_dir = provider["options"]["path"]
    assert (ROOT / mounted[dashboards_dir] / DASHBOARD.name).resolve() == DASHBOARD
    # the provisioning mount holds the provider and datasource files under the paths Grafana reads
    for path in (PROVIDER, DATASOURCE):
        assert path.is_relative_to((ROOT / mounted["/etc/grafana/provisioning"]).resolve())
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana["depends_on"] == ["prometheus"]
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]


def test_the_datasource_points_at_the_compose_prometheus() -> None:
    source = yaml_file(DATASOURCE)["datasources"][0]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    prometheus = services()["prometheus"]
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"]
    # no command override: the image reads its config from this path
    assert "command" not in prometheus
    assert mounts(prometheus)["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert prometheus["volumes"][0].endswith(":ro")


def test_prometheus_scrapes_every_gateway_replica_of_compose() -> None:
    replicas = {name for name in services() if name.startswith("gateway-")}
    assert len(replicas) >= 2
    [job] = yaml_file(PROMETHEUS)["scrape_configs"]
    assert job["job_name"] == "gateway"
    assert job["scrape_interval"] == "5s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {
        target: group["labels"]["instance"] for group in job["static_configs"] for target in group["targets"]
    }
    assert set(targets) == {f"{name}:8000" for name in replicas}
    assert len(set(targets.values())) == len(targets), "each replica needs its own instance label"
    # the bearer token block is there to uncomment, for GATEWAY_METRICS_TOKEN
    assert "# authorization:" in PROMETHEUS.read_text()
