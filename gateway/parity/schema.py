"""Tables of the parity store, created on first write (gateway.db.Table: plain DDL).

Counters are additive: every writer (worker, instance) adds its increments with an upsert,
so one store can take several gateways. Nothing here is derived: whether a comparison
matched is decided at report time from its fields and the noise learnt so far, so older
comparisons are re-judged as noise knowledge grows.
"""

from __future__ import annotations

from gateway.db import Table

ROUTE_ID = 128
PATH = 512
SIGNATURE = 256
SCHEMA_LOCK = int.from_bytes(b"parity", "big")  # any constant: the advisory lock of schema creation

routes = Table(
    "parity_routes",
    (
        f"route_id VARCHAR({ROUTE_ID}) NOT NULL",
        "compared BIGINT NOT NULL",  # both sides answered and were compared
        "exact_matches BIGINT NOT NULL",  # compared without any difference
        "candidate_errors BIGINT NOT NULL",  # the candidate failed to answer
        "noise_runs BIGINT NOT NULL",  # owner-vs-owner comparisons
        "last_at FLOAT NOT NULL",  # epoch seconds of the newest record
    ),
    key=("route_id",),
)

skips = Table(
    "parity_skips",
    (f"route_id VARCHAR({ROUTE_ID}) NOT NULL", "reason VARCHAR(64) NOT NULL", "n BIGINT NOT NULL"),
    key=("route_id", "reason"),
)

# one row per distinct set of differing fields: how many comparisons had exactly that set
signatures = Table(
    "parity_signatures",
    (
        f"route_id VARCHAR({ROUTE_ID}) NOT NULL",
        f"signature VARCHAR({SIGNATURE}) NOT NULL",
        "fields TEXT NOT NULL",  # JSON list of [path, kind]
        "n BIGINT NOT NULL",
        "last_at FLOAT NOT NULL",
    ),
    key=("route_id", "signature"),
)

# per field: in how many comparisons it differed (candidate) and in how many noise runs
fields = Table(
    "parity_fields",
    (
        f"route_id VARCHAR({ROUTE_ID}) NOT NULL",
        f"path VARCHAR({PATH}) NOT NULL",
        "kind VARCHAR(16) NOT NULL",
        "candidate_n BIGINT NOT NULL",
        "noise_n BIGINT NOT NULL",
    ),
    key=("route_id", "path", "kind"),
)

# fixed log-spaced buckets (gateway.parity.latency): bounded size, percentiles at report time
latency = Table(
    "parity_latency",
    (
        f"route_id VARCHAR({ROUTE_ID}) NOT NULL",
        "side VARCHAR(8) NOT NULL",  # legacy | new
        "bucket INTEGER NOT NULL",
        "n BIGINT NOT NULL",
    ),
    key=("route_id", "side", "bucket"),
)

# redacted examples: at most N per (route, signature), a global cap and a maximum age
samples = Table(
    "parity_samples",
    (
        "id {serial} NOT NULL",
        f"route_id VARCHAR({ROUTE_ID}) NOT NULL",
        f"signature VARCHAR({SIGNATURE}) NOT NULL",
        "created_at FLOAT NOT NULL",
        "owner_side VARCHAR(8) NOT NULL",
        "request TEXT NOT NULL",  # JSON, see gateway.parity.redact
        "owner TEXT NOT NULL",
        "candidate TEXT NOT NULL",
        "differences TEXT NOT NULL",
    ),
    key=("id",),
    indexes=(
        ("ix_parity_samples_created_at", "created_at"),
        ("ix_parity_samples_route_signature", "route_id, signature, id"),
    ),
)

TABLES = (routes, skips, signatures, fields, latency, samples)
