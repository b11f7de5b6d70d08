"""Which differing fields are real, after Diffy: pure arithmetic on counts.

For sampled safe requests the owner answers a second time and is diffed against itself, so
each field (path, kind) has two rates: c = times owner and candidate differed / comparisons,
n = times owner and owner differed / noise runs (0 without noise runs). A field is REAL only
when the candidate differs clearly more often than the owner differs from itself:

    c > 1.2 * n       (relative difference above 20 %)
    c - n > 0.0003    (absolute difference above 0.03 % of requests)

Otherwise it is NOISE (a timestamp, a random id): reported as noise, never as a mismatch. Both
tests are strict and done in integers, so the boundaries hold exactly.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from gateway.exchange import Difference, DiffKind

FieldKey = tuple[str, DiffKind]


class Verdict(StrEnum):
    REAL = "real"
    NOISE = "noise"


@dataclass(frozen=True, slots=True)
class FieldVerdict:
    path: str
    kind: DiffKind
    count: int  # owner-vs-candidate comparisons in which this field differed
    rate: float  # c
    noise_rate: float  # n
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class FieldVerdicts:
    fields: tuple[FieldVerdict, ...]  # sorted by (path, kind)

    @property
    def real(self) -> frozenset[FieldKey]:
        return frozenset((f.path, f.kind) for f in self.fields if f.verdict is Verdict.REAL)

    @property
    def noise(self) -> frozenset[FieldKey]:
        return frozenset((f.path, f.kind) for f in self.fields if f.verdict is Verdict.NOISE)


def is_real(count: int, compared: int, noise_count: int, noise_runs: int) -> bool:
    if min(count, compared, noise_count, noise_runs) < 0:
        raise ValueError("counts cannot be negative")
    if count == 0 or compared == 0:
        return False
    if noise_runs == 0:
        # n = 0: only the absolute threshold can fail
        return count * 10_000 > 3 * compared
    # c / n ratios cross-multiplied by compared * noise_runs (both > 0)
    relative = 5 * count * noise_runs > 6 * noise_count * compared
    absolute = 10_000 * (count * noise_runs - noise_count * compared) > 3 * compared * noise_runs
    return relative and absolute


def classify(
    fields: Mapping[FieldKey, int], compared: int, noise: Mapping[FieldKey, int], noise_runs: int
) -> FieldVerdicts:
    """`fields`: per field, in how many of `compared` owner-vs-candidate comparisons it differed;
    `noise`: the same over `noise_runs` owner-vs-owner runs."""
    verdicts = []
    for (path, kind), count in sorted(fields.items(), key=lambda item: (item[0][0], item[0][1].value)):
        noise_count = noise.get((path, kind), 0) if noise_runs else 0
        verdicts.append(
            FieldVerdict(
                path=path,
                kind=kind,
                count=count,
                rate=count / compared if compared else 0.0,
                noise_rate=noise_count / noise_runs if noise_runs else 0.0,
                verdict=Verdict.REAL if is_real(count, compared, noise_count, noise_runs) else Verdict.NOISE,
            )
        )
    return FieldVerdicts(tuple(verdicts))


def is_real_mismatch(diffs: Iterable[Difference], noise_fields: Collection[FieldKey]) -> bool:
    """A comparison is a mismatch when at least one of its differences is not a noise field."""
    return any((d.path, d.kind) not in noise_fields for d in diffs)
