"""Latency histograms with fixed log-spaced buckets, so p50/p95 come from a bounded store.

Bucket 0 holds everything under 0.5 ms, bucket i (1..LAST-1) holds [0.5*R^(i-1), 0.5*R^i) ms
with R = 1.08, and LAST everything from 60 s up: a percentile read back is within ~4 % of
the true value, and a route never has more than LAST+1 rows per side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

BASE_MS = 0.5
RATIO = 1.08
MAX_MS = 60_000.0
LAST = math.ceil(math.log(MAX_MS / BASE_MS) / math.log(RATIO)) + 1
_LOG_RATIO = math.log(RATIO)


def bucket(ms: float) -> int:
    if not ms >= BASE_MS:  # also NaN
        return 0
    if ms >= MAX_MS:
        return LAST
    return min(LAST - 1, int(math.log(ms / BASE_MS) / _LOG_RATIO) + 1)


def value(index: int) -> float:
    """The value a bucket stands for: its geometric middle (its bound at either end)."""
    if index <= 0:
        return BASE_MS
    if index >= LAST:
        return MAX_MS
    return float(BASE_MS * RATIO ** (index - 0.5))


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) in ms, or None for an empty histogram."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return value(index)
    return value(max(histogram))
