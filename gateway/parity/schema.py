"""Tables of the parity store (SQLAlchemy Core, own MetaData, created on open).

Counters are additive: every writer (worker, instance) adds its increments with an upsert,
so one store can take several gateways. Nothing here is derived: whether a comparison
matched is decided at report time from its fields and the noise learnt so far, so older
comparisons are re-judged as noise knowledge grows.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ROUTE_ID = 128
PATH = 512
SIGNATURE = 256

routes = sa.Table(
    "parity_routes",
    metadata,
    sa.Column("route_id", sa.String(ROUTE_ID), primary_key=True),
    sa.Column("compared", sa.BigInteger, nullable=False),  # both sides answered and were compared
    sa.Column("exact_matches", sa.BigInteger, nullable=False),  # compared without any difference
    sa.Column("candidate_errors", sa.BigInteger, nullable=False),  # the candidate failed to answer
    sa.Column("noise_runs", sa.BigInteger, nullable=False),  # owner-vs-owner comparisons
    sa.Column("last_at", sa.Float, nullable=False),  # epoch seconds of the newest record
)

skips = sa.Table(
    "parity_skips",
    metadata,
    sa.Column("route_id", sa.String(ROUTE_ID), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

# one row per distinct set of differing fields: how many comparisons had exactly that set
signatures = sa.Table(
    "parity_signatures",
    metadata,
    sa.Column("route_id", sa.String(ROUTE_ID), primary_key=True),
    sa.Column("signature", sa.String(SIGNATURE), primary_key=True),
    sa.Column("fields", sa.Text, nullable=False),  # JSON list of [path, kind]
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("last_at", sa.Float, nullable=False),
)

# per field: in how many comparisons it differed (candidate) and in how many noise runs
fields = sa.Table(
    "parity_fields",
    metadata,
    sa.Column("route_id", sa.String(ROUTE_ID), primary_key=True),
    sa.Column("path", sa.String(PATH), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("candidate_n", sa.BigInteger, nullable=False),
    sa.Column("noise_n", sa.BigInteger, nullable=False),
)

# fixed log-spaced buckets (gateway.parity.latency): bounded size, percentiles at report time
latency = sa.Table(
    "parity_latency",
    metadata,
    sa.Column("route_id", sa.String(ROUTE_ID), primary_key=True),
    sa.Column("side", sa.String(8), primary_key=True),  # legacy | new
    sa.Column("bucket", sa.Integer, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

# redacted examples: at most N per (route, signature), a global cap and a maximum age
samples = sa.Table(
    "parity_samples",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("route_id", sa.String(ROUTE_ID), nullable=False),
    sa.Column("signature", sa.String(SIGNATURE), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("owner_side", sa.String(8), nullable=False),
    sa.Column("request", sa.Text, nullable=False),  # JSON, see gateway.parity.redact
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("candidate", sa.Text, nullable=False),
    sa.Column("differences", sa.Text, nullable=False),
    sa.Index("ix_parity_samples_route_signature", "route_id", "signature", "id"),
    sa.Index("ix_parity_samples_created_at", "created_at"),
)

COUNTER_TABLES = (routes, skips, signatures, fields, latency)
