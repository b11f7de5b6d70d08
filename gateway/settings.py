"""Typed settings, read from GATEWAY_* environment variables by the app factory (never at import)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    map_path: Path = Path("migration_map.yaml")
    # the legacy side: a WSGI app (or a factory returning one) by import string, served
    # in-process; or, when legacy_url is set, a remote server proxied over HTTP
    legacy_app: str = "legacy_flask.app:create_app"
    legacy_url: str | None = None
    # the native side: any ASGI app (or factory) by import string
    native_app: str = "features.main:create_app"
    # the native router tries only the routes a map entry's URLs can reach (gateway/native_routes.py)
    native_route_shortcut: bool = True
    # the demo seed function, by import string, for `gateway seed`
    seed: str = "legacy_flask.seed:seed"

    legacy_threads: int = Field(10, ge=1, le=1000)
    legacy_queue_timeout: float = Field(5.0, gt=0, description="seconds a legacy request waits for a thread")
    remote_timeout: float = Field(30.0, gt=0)
    remote_max_connections: int = Field(100, ge=1)

    # shadow traffic: workers comparing off the response path, and how many may wait
    shadow_concurrency: int = Field(8, ge=1, le=1000)
    shadow_queue_size: int = Field(100, ge=1, le=100_000)
    shadow_legacy_threads: int = Field(4, ge=1, le=1000, description="legacy threads for shadow calls only")
    # shadows share the core with client requests: the share of one core their work may use
    # over a sliding second (over it they are skipped, reason "budget"; 1: no limit). 1 %: at
    # half a core, any shadow work raises the primary's p99 about as much as it raises the
    # core's load; side by side 2 % put the open loop's p99 at 1.11-1.17x shadow off, 1 % at
    # 0.98-1.11x, still ~20 comparisons a second per worker (PROFILE.md, ninth pass)
    shadow_cpu_budget: float = Field(0.01, gt=0, le=1)
    # ... and less while the process is busy: only what is left below `ceiling` of a core
    # (client requests and their legacy threads count), never less than `floor`
    shadow_cpu_ceiling: float = Field(0.75, gt=0, le=64)
    shadow_cpu_floor: float = Field(0.01, ge=0, le=1)
    # the most shadow work that may run back to back, after an idle spell (the bucket's size)
    shadow_cpu_burst_ms: float = Field(5.0, gt=0, le=1000)
    # > 0: queued shadow copies run in this many processes per gateway worker, at idle CPU
    # priority, instead of on the serving loop (gateway/shadow_processes.py)
    shadow_processes: int = Field(0, ge=0, le=64)

    # progressive cutover: how often each worker reads the shared runtime state, and the token
    # that lets a request force a side with X-Gateway-Backend (unset: overrides are off)
    state_poll_interval: float = Field(1.0, gt=0, le=60)
    override_token: SecretStr | None = None

    # larger request bodies are refused with 413 before (declared) or while (chunked) they arrive
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1)
    request_id_header: str = "X-Request-ID"
    served_by_header: str = Field("X-Served-By", description="empty to turn the header off")

    reload_poll_interval: float = Field(2.0, gt=0, description="fallback map check when no file event comes")
    # a reloaded map is parsed in a child process at idle priority (gateway.map_worker); off: on a thread
    reload_in_child: bool = True
    shutdown_timeout: float = Field(10.0, ge=0)
    log_level: str = Field("INFO", pattern=r"(?i)^(debug|info|warning|error|critical)$")
    # the gateway's own log lines: JSON objects, or `text` (time level logger: message)
    log_format: Literal["json", "text"] = "json"
    # one JSON line per request on the `gateway.access` logger (never headers, query or body)
    access_log: bool = True

    # the parity store: shadow results and samples (`postgresql://...` for several instances)
    store_url: str = "sqlite:///gateway_parity.db"
    store_flush_interval: float = Field(1.0, gt=0, le=3600, description="seconds between batched writes")
    samples_per_signature: int = Field(5, ge=0, le=1000, description="samples kept per route and diff")
    max_samples: int = Field(10_000, ge=0, description="samples kept in all; the oldest go first")
    sample_retention_days: float = Field(14.0, gt=0)
    # the admin API (/_gateway/api/...) answers only `Authorization: Bearer <token>`; off when unset.
    # admin_token's holder is named "admin"; admin_tokens names more ({"alice": "tok-a"}, JSON
    # in GATEWAY_ADMIN_TOKENS), and the audit log says which name did what
    admin_token: SecretStr | None = None
    # /metrics is open (for scrapers inside the network) unless this is set: then it needs
    # `Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: ...}`)
    metrics_token: SecretStr | None = None
    admin_tokens: dict[str, SecretStr] = {}

    @model_validator(mode="after")
    def _named_tokens(self) -> GatewaySettings:
        tokens = self.admin_tokens
        if not all(name.strip() and token.get_secret_value().strip() for name, token in tokens.items()):
            raise ValueError("admin_tokens: every name and every token must be non-empty")
        if "admin" in tokens and self.admin_token is not None and self.admin_token.get_secret_value():
            raise ValueError("admin_tokens names an 'admin', the name of admin_token's holder: rename one")
        holders: dict[str, str] = {}
        for name, token in self.named_admin_tokens().items():
            first = holders.setdefault(token.get_secret_value(), name)
            if first != name:
                raise ValueError(f"the admin tokens of {first!r} and {name!r} are the same: tell them apart")
        return self

    def named_admin_tokens(self) -> dict[str, SecretStr]:
        """Every admin token by its holder's name; empty: the admin API is off."""
        admin = self.admin_token
        named = {"admin": admin} if admin is not None and admin.get_secret_value() else {}
        return {**named, **self.admin_tokens}
