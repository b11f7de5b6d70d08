"""Quantiles from a Prometheus histogram's cumulative buckets, the way `histogram_quantile` does.

The answer is interpolated linearly inside the bucket where the rank falls, so it is an
estimate whose precision is the bucket layout's (gateway.metrics.LATENCY_BUCKETS). A rank in
the +Inf bucket answers the highest finite bound: nothing better is known about it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile (0 <= q <= 1) from (upper bound, cumulative count) pairs in any order,
    +Inf included; None when nothing was observed or the buckets cannot answer."""
    if not 0 <= q <= 1:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None  # without the +Inf bucket the total is unknown, as in Prometheus
    # counts scraped from several processes can be slightly off: force them monotonic
    fixed: list[tuple[float, float]] = []
    for bound, count in ordered:
        fixed.append((bound, max(count, fixed[-1][1]) if fixed else count))
    total = fixed[-1][1]
    if total <= 0:
        return None
    rank = q * total
    b = next(i for i, (_, count) in enumerate(fixed) if count >= rank)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    end, count = fixed[b]
    if b == 0 and end <= 0:
        return end
    start = 0.0
    if b > 0:
        start, below = fixed[b - 1]
        count -= below
        rank -= below
    if count <= 0:
        return start
    return start + (end - start) * (rank / count)
