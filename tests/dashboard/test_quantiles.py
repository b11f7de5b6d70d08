"""Quantiles from cumulative histogram buckets, interpolated as Prometheus' histogram_quantile."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import CollectorRegistry, Histogram

from gateway.dashboard.quantiles import histogram_quantile
from gateway.metrics import LATENCY_BUCKETS

INF = math.inf
BUCKETS = [(0.1, 10.0), (0.2, 20.0), (0.4, 40.0), (INF, 40.0)]


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.0, 0.0), (0.25, 0.1), (0.5, 0.2), (0.75, 0.3), (0.625, 0.25), (1.0, 0.4)],
)
def test_linear_interpolation_inside_the_bucket(q: float, expected: float) -> None:
    assert histogram_quantile(q, BUCKETS) == pytest.approx(expected)


def test_the_order_of_the_buckets_does_not_matter() -> None:
    assert histogram_quantile(0.75, list(reversed(BUCKETS))) == pytest.approx(0.3)


def test_a_rank_in_the_inf_bucket_answers_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, [(0.1, 1.0), (0.5, 2.0), (INF, 10.0)]) == 0.5


def test_nothing_observed_or_no_inf_bucket_is_none() -> None:
    assert histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None
    assert histogram_quantile(0.5, [(0.1, 3.0), (0.2, 5.0)]) is None  # the total is unknown
    assert histogram_quantile(0.5, [(INF, 5.0)]) is None
    assert histogram_quantile(0.5, []) is None


def test_counts_that_go_down_are_treated_as_flat() -> None:
    # summed over processes, a scrape can catch a higher bucket before a lower one moves
    assert histogram_quantile(0.5, [(0.1, 10.0), (0.2, 9.0), (0.4, 20.0), (INF, 20.0)]) == pytest.approx(0.1)


def test_a_quantile_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        histogram_quantile(1.5, BUCKETS)


def test_against_a_real_prometheus_histogram() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("t_seconds", "t", buckets=LATENCY_BUCKETS, registry=registry)
    rng = random.Random(7)
    values = sorted(rng.uniform(0.002, 0.09) for _ in range(2000))
    for v in values:
        histogram.observe(v)
    [family] = list(registry.collect())
    pairs = [(float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")]
    for q in (0.5, 0.95, 0.99):
        true = values[int(q * len(values)) - 1]
        estimate = histogram_quantile(q, pairs)
        assert estimate is not None
        lower = max([b for b in LATENCY_BUCKETS if b < true], default=0.0)
        upper = min(b for b in LATENCY_BUCKETS if b >= true)
        assert lower <= estimate <= upper, (q, true, estimate)  # inside the true value's bucket
