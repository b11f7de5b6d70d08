import pytest

from gateway.parity import latency
from gateway.rollout.guard import GuardVerdict, WindowStats, evaluate
from gateway.rollout_schema import GuardSettings

T0 = 1000.0  # a monotonic clock reading; the window only cares about differences


def guard(**settings: float | int | None) -> GuardSettings:
    base: dict[str, float | int | None] = {
        "window_s": 60,
        "min_samples": 100,
        "max_error_rate": None,
        "max_error_excess": None,
        "p99_ratio": None,
        "max_mismatch_rate": None,
    }
    return GuardSettings.model_validate({**base, **settings})


def feed(
    stats: WindowStats, side: str, *, ok: int = 0, errors: int = 0, raised: int = 0,
    ms: float = 10.0, at: float = T0,
) -> None:
    for _ in range(ok):
        stats.observe(side, 200, ms, at)
    for _ in range(errors):
        stats.observe(side, 503, ms, at)
    for _ in range(raised):
        stats.observe(side, None, ms, at)


def shadows(stats: WindowStats, *, same: int, differ: int, at: float = T0) -> None:
    for _ in range(same):
        stats.observe_shadow(False, at)
    for _ in range(differ):
        stats.observe_shadow(True, at)


# -- the window ----------------------------------------------------------------------------------


def test_observations_count_for_the_window_and_then_expire() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=3, errors=1, at=T0)
    feed(stats, "new", ok=5, at=T0 + 30.5)
    stats.observe_shadow(True, T0 + 0.2)
    assert stats.snapshot(T0 + 59.999).new_requests == 9
    assert stats.snapshot(T0 + 59.999).shadow_mismatches == 1
    at_60 = stats.snapshot(T0 + 60.0)  # T0's second has left the window
    assert (at_60.new_requests, at_60.new_errors, at_60.shadow_compared) == (5, 0, 0)
    assert stats.snapshot(T0 + 89.999).new_requests == 5
    gone = stats.snapshot(T0 + 90.0)
    assert (gone.new_requests, gone.new_p99_ms) == (0, None)


def test_recycled_buckets_count_only_their_new_observations() -> None:
    stats = WindowStats(5)
    for second in range(20):  # 20 s of steady traffic through a 5-bucket ring
        feed(stats, "new", ok=10, errors=second % 2, ms=4.0 + second, at=T0 + second + 0.5)
        feed(stats, "legacy", ok=2, at=T0 + second + 0.5)
        stats.observe_shadow(second % 5 == 0, T0 + second + 0.5)
    window = stats.snapshot(T0 + 19.9)  # seconds 15..19
    assert (window.new_requests, window.new_errors) == (53, 3)  # errors in seconds 15, 17 and 19
    assert window.legacy_requests == 10
    assert (window.shadow_compared, window.shadow_mismatches) == (5, 1)
    assert window.new_p99_ms == latency.value(latency.bucket(23.0))


def test_slow_requests_that_left_the_window_no_longer_weigh_on_p99() -> None:
    stats = WindowStats(10)
    feed(stats, "new", ok=100, ms=2000.0, at=T0)
    feed(stats, "new", ok=100, ms=8.0, at=T0 + 5)
    assert stats.snapshot(T0 + 9).new_p99_ms == latency.value(latency.bucket(2000.0))
    assert stats.snapshot(T0 + 10).new_p99_ms == latency.value(latency.bucket(8.0))


def test_a_long_idle_gap_empties_the_window() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=50, errors=50, at=T0)
    feed(stats, "legacy", ok=5, at=T0)
    shadows(stats, same=3, differ=3)
    feed(stats, "new", ok=1, at=T0 + 3600)
    after = stats.snapshot(T0 + 3600)
    assert (after.new_requests, after.new_errors, after.legacy_requests, after.shadow_compared) == (1, 0, 0, 0)


def test_a_late_observation_counts_in_its_own_second_or_not_at_all() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=1, at=T0 + 100)
    feed(stats, "new", ok=1, at=T0 + 50)  # 50 s late: still inside the window
    feed(stats, "new", ok=1, at=T0 + 40)  # 60 s late: already outside
    assert stats.snapshot(T0 + 100).new_requests == 2
    assert stats.snapshot(T0 + 110).new_requests == 1


def test_statuses_that_are_errors() -> None:
    stats = WindowStats(60)
    for status in (200, 204, 301, 404, 499, 500, 503, 599, None):
        stats.observe("new", status, 5.0, T0)
    assert (stats.snapshot(T0).new_requests, stats.snapshot(T0).new_errors) == (9, 4)


def test_an_unknown_side_is_refused() -> None:
    with pytest.raises(ValueError, match="'legacy' or 'new'"):
        WindowStats(60).observe("old", 200, 1.0, T0)


# -- evaluate ------------------------------------------------------------------------------------


def test_inconclusive_below_min_samples_even_with_every_request_failing() -> None:
    stats = WindowStats(60)
    feed(stats, "new", errors=60, raised=39)
    feed(stats, "legacy", ok=1000)
    shadows(stats, same=0, differ=500)
    settings = guard(max_error_rate=0.01, max_error_excess=0.01, max_mismatch_rate=0.01, p99_ratio=1.1)
    verdict = evaluate(stats, settings, T0)
    assert verdict.decision == "inconclusive"
    assert verdict.reasons == ("only 99 new-side requests over 60 s; 100 needed to judge",)
    assert verdict.figures["new_requests"] == 99
    assert verdict.figures["new_error_rate"] == 1.0


def test_an_empty_window_is_inconclusive_not_ok() -> None:
    verdict = evaluate(WindowStats(60), guard(max_error_rate=0.05), T0)
    assert verdict.decision == "inconclusive"
    assert verdict.figures["new_error_rate"] is None
    assert verdict.figures["p99_ratio"] is None


def test_error_rate_breach_names_the_figures() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=176, errors=20, raised=4)
    verdict = evaluate(stats, guard(max_error_rate=0.05), T0 + 1)
    assert verdict.decision == "breach"
    assert verdict.reasons == ("new error rate 12.0 % over 60 s (24 of 200) exceeds 5.0 %",)
    assert (verdict.figures["new_requests"], verdict.figures["new_errors"]) == (200, 24)
    assert verdict.figures["new_error_rate"] == pytest.approx(0.12)


def test_error_rate_equal_to_the_threshold_is_not_a_breach() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=190, errors=10)
    assert evaluate(stats, guard(max_error_rate=0.05), T0) == GuardVerdict(
        "ok", (), evaluate(stats, guard(), T0).figures
    )
    feed(stats, "new", errors=1)
    assert evaluate(stats, guard(max_error_rate=0.05), T0).decision == "breach"


def test_error_excess_over_legacy() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=90, errors=10)
    feed(stats, "legacy", ok=98, errors=2)
    verdict = evaluate(stats, guard(max_error_excess=0.05), T0)
    assert verdict.decision == "breach"
    assert verdict.reasons == (
        "new error rate 10.0 % (10 of 100) exceeds legacy's 2.0 % (2 of 100) by 8.0 points over 60 s; "
        "at most 5.0 points allowed",
    )
    assert verdict.figures["legacy_error_rate"] == pytest.approx(0.02)
    # a legacy side that fails just as often excuses the new side
    assert evaluate(stats, guard(max_error_excess=0.1), T0).decision == "ok"


def test_error_excess_equal_to_the_threshold_is_not_a_breach() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=90, errors=10)
    feed(stats, "legacy", ok=91, errors=9)
    assert 10 / 100 - 9 / 100 > 0.01  # float rounding alone would call this a breach
    assert evaluate(stats, guard(max_error_excess=0.01), T0).decision == "ok"
    feed(stats, "new", errors=1)  # 11 of 101: 1.9 points
    assert evaluate(stats, guard(max_error_excess=0.01), T0).decision == "breach"


def test_error_excess_is_skipped_without_enough_legacy_requests() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=50, errors=50)
    feed(stats, "legacy", ok=99)
    verdict = evaluate(stats, guard(max_error_excess=0.01), T0)
    assert verdict.decision == "ok"
    assert verdict.reasons == (
        "error excess over legacy not checked: only 99 legacy requests over 60 s; 100 needed",
    )


def test_p99_ratio_breach() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=200, ms=300.0)
    feed(stats, "legacy", ok=200, ms=100.0)
    verdict = evaluate(stats, guard(p99_ratio=1.5), T0)
    new_p99, legacy_p99 = latency.value(latency.bucket(300.0)), latency.value(latency.bucket(100.0))
    assert verdict.decision == "breach"
    assert (verdict.figures["new_p99_ms"], verdict.figures["legacy_p99_ms"]) == (new_p99, legacy_p99)
    assert verdict.figures["p99_ratio"] == pytest.approx(new_p99 / legacy_p99)
    assert verdict.reasons == (
        f"new p99 {new_p99:.1f} ms is {new_p99 / legacy_p99:.2f}x legacy's {legacy_p99:.1f} ms over 60 s "
        "(200 and 200 requests); at most 1.5x allowed",
    )


def test_p99_looks_at_the_tail_not_the_maximum() -> None:
    stats = WindowStats(60)
    feed(stats, "legacy", ok=200, ms=10.0)
    feed(stats, "new", ok=199, ms=10.0)
    feed(stats, "new", ok=1, ms=5000.0)  # 0.5 %: under the 99th percentile
    assert evaluate(stats, guard(p99_ratio=1.5), T0).decision == "ok"
    feed(stats, "new", ok=2, ms=5000.0)  # 3 of 202: now the 99th percentile is slow
    assert evaluate(stats, guard(p99_ratio=1.5), T0).decision == "breach"


def test_p99_ratio_equal_to_the_threshold_is_not_a_breach() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=200, ms=30.0)
    feed(stats, "legacy", ok=200, ms=10.0)
    ratio = evaluate(stats, guard(), T0).figures["p99_ratio"]
    assert isinstance(ratio, float) and ratio > 2.5
    assert evaluate(stats, guard(p99_ratio=ratio), T0).decision == "ok"
    assert evaluate(stats, guard(p99_ratio=ratio * 0.999), T0).decision == "breach"


def test_p99_ratio_is_skipped_without_enough_legacy_requests() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=200, ms=5000.0)
    feed(stats, "legacy", ok=10, ms=1.0)
    verdict = evaluate(stats, guard(p99_ratio=1.2), T0)
    assert verdict.decision == "ok"
    assert verdict.reasons == ("p99 ratio not checked: only 10 legacy requests over 60 s; 100 needed",)
    assert isinstance(verdict.figures["p99_ratio"], float)  # still reported, just not judged


def test_mismatch_rate_breach_and_boundary() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=100)
    shadows(stats, same=198, differ=2)  # exactly 1 %
    assert evaluate(stats, guard(max_mismatch_rate=0.01), T0).decision == "ok"
    shadows(stats, same=0, differ=1)
    verdict = evaluate(stats, guard(max_mismatch_rate=0.01), T0)
    assert verdict.decision == "breach"
    assert verdict.reasons == ("shadow mismatch rate 1.5 % over 60 s (3 of 201 compared) exceeds 1.0 %",)
    assert (verdict.figures["shadow_compared"], verdict.figures["shadow_mismatch_rate"]) == (201, 3 / 201)


def test_small_thresholds_keep_their_digits() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=100)
    shadows(stats, same=999, differ=1)
    verdict = evaluate(stats, guard(max_mismatch_rate=0.0005), T0)
    assert verdict.reasons == ("shadow mismatch rate 0.1 % over 60 s (1 of 1000 compared) exceeds 0.05 %",)


def test_mismatch_rate_needs_min_samples_comparisons() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=100)
    shadows(stats, same=0, differ=99)
    verdict = evaluate(stats, guard(max_mismatch_rate=0.01), T0)
    assert verdict.decision == "ok"
    assert verdict.reasons == (
        "mismatch rate not checked: only 99 shadow comparisons over 60 s; 100 needed",
    )


def test_every_exceeded_threshold_is_reported_and_notes_stay_out_of_a_breach() -> None:
    stats = WindowStats(30)
    feed(stats, "new", ok=80, errors=20, ms=900.0)
    feed(stats, "legacy", ok=5)
    shadows(stats, same=50, differ=50)
    settings = guard(max_error_rate=0.1, max_error_excess=0.0, p99_ratio=1.1, max_mismatch_rate=0.1)
    verdict = evaluate(stats, settings, T0)
    assert verdict.decision == "breach"
    assert verdict.reasons == (
        "new error rate 20.0 % over 30 s (20 of 100) exceeds 10.0 %",
        "shadow mismatch rate 50.0 % over 30 s (50 of 100 compared) exceeds 10.0 %",
    )


def test_ok_with_every_check_run_has_no_reasons_and_all_figures() -> None:
    stats = WindowStats(60)
    feed(stats, "new", ok=199, errors=1, ms=12.0)
    feed(stats, "legacy", ok=198, errors=2, ms=11.0)
    shadows(stats, same=150, differ=0)
    settings = guard(max_error_rate=0.01, max_error_excess=0.0, p99_ratio=1.2, max_mismatch_rate=0.0)
    verdict = evaluate(stats, settings, T0)
    assert verdict == GuardVerdict("ok", (), verdict.figures)
    assert set(verdict.figures) >= {
        "new_requests", "new_errors", "new_error_rate", "legacy_requests", "legacy_error_rate",
        "new_p99_ms", "legacy_p99_ms", "p99_ratio", "shadow_compared", "shadow_mismatch_rate",
    }
    assert verdict.figures["shadow_mismatch_rate"] == 0.0
    assert verdict.figures["legacy_requests"] == 200
