"""Small inline SVG charts: no script, no external file, so the page works offline."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from gateway.dashboard.figures import Latency

COLORS = {"legacy": "#b45309", "new": "#1d4ed8"}
QUANTILES = (("p50", "p50"), ("p95", "p95"), ("p99", "p99"))


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    value = seconds * 1000
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def series_name(series: Latency) -> str:
    return series.backend if series.role == "primary" else f"{series.backend} ({series.role})"


def latency_bars(series: Sequence[Latency], width: int = 180, height: int = 60) -> str:
    """Grouped bars: p50, p95 and p99, one bar per side (shadow measurements paler)."""
    if not series:
        return ""
    values = [v for s in series for v in (s.p50, s.p95, s.p99) if v is not None]
    top = max(values, default=0.0) or 1.0
    group = width / len(QUANTILES)
    bar = (group - 8) / len(series)
    plot = height - 13  # room for the labels underneath
    parts = []
    for g, (label, attr) in enumerate(QUANTILES):
        for i, s in enumerate(series):
            value = getattr(s, attr)
            h = max(1.0, plot * value / top) if value else 0.0
            x = g * group + 4 + i * bar
            opacity = "1" if s.role == "primary" else "0.45"
            tip = escape(f"{series_name(s)} {label}: {ms(value)} ms")
            parts.append(
                f'<rect x="{x:.1f}" y="{plot - h:.1f}" width="{max(bar - 1, 1):.1f}" height="{h:.1f}" '
                f'fill="{COLORS.get(s.backend, "#555")}" fill-opacity="{opacity}"><title>{tip}</title></rect>'
            )
        parts.append(
            f'<text x="{g * group + group / 2:.1f}" y="{height - 2}" text-anchor="middle">{label}</text>'
        )
    summary = escape("; ".join(f"{series_name(s)} p99 {ms(s.p99)} ms" for s in series))
    return (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="latency: {summary}">{"".join(parts)}</svg>'
    )


def progress_bar(done: int, total: int, width: int = 240, height: int = 12) -> str:
    filled = width * done / total if total else 0
    return (
        f'<svg class="progress" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{done} of {total} native">'
        f'<rect width="{width}" height="{height}" rx="3" fill="#e5e7eb"/>'
        f'<rect width="{filled:.1f}" height="{height}" rx="3" fill="{COLORS["new"]}"/></svg>'
    )
