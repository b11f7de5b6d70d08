"""Just enough of the Prometheus text format to read the gateway's counters (pure, unit-tested)."""

from __future__ import annotations

import re
from collections.abc import Mapping

Sample = tuple[str, dict[str, str], float]
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[Sample]:
    samples: list[Sample] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        samples.append((name, dict(_LABEL.findall(labels or "")), number))
    return samples


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == x for k, x in labels.items()))


def by_label(samples: list[Sample], name: str, label: str, **labels: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for n, ls, v in samples:
        if n == name and all(ls.get(k) == x for k, x in labels.items()):
            out[ls.get(label, "")] = out.get(ls.get(label, ""), 0.0) + v
    return out


def delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}
