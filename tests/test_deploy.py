"""docker-compose.yml and the Dockerfile stay valid and pinned (Docker does not run here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from gateway.map_loader import load_map

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_every_image_is_pinned_to_a_version() -> None:
    images = [s["image"] for s in compose()["services"].values() if "image" in s]
    images += re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert images
    for image in images:
        _, _, tag = image.partition(":")
        assert re.search(r"\d+\.\d+", tag), f"{image} is not pinned to a version"


def test_compose_runs_two_replicas_behind_a_load_balancer() -> None:
    services = compose()["services"]
    gateways = [name for name in services if name.startswith("gateway-")]
    assert len(gateways) == 2
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    for name in gateways:
        assert f"server {name}:8000" in nginx
    lb = services["lb"]
    assert lb["volumes"][0].split(":")[0] == "./deploy/nginx.conf"
    assert set(lb["depends_on"]) == set(gateways)


def test_compose_wires_gateway_to_postgres_and_mounts_a_valid_map() -> None:
    services = compose()["services"]
    assert set(services) >= {"gateway-1", "gateway-2", "postgres"}
    gateway = services["gateway-1"]
    assert services["gateway-2"]["environment"] == gateway["environment"]  # one configuration
    assert gateway["environment"]["GATEWAY_STORE_URL"].startswith("postgresql://")
    assert gateway["build"] == "."
    assert "postgres" in gateway["depends_on"]
    assert gateway["environment"]["DATABASE_URL"].startswith("postgresql://")
    host_dir, container_dir, _ = gateway["volumes"][0].split(":")
    assert gateway["environment"]["GATEWAY_MAP_PATH"] == f"{container_dir}/migration_map.yaml"
    assert (ROOT / host_dir).resolve() == ROOT
    load_map(ROOT / host_dir / "migration_map.yaml")
    assert (ROOT / "Dockerfile").exists()
