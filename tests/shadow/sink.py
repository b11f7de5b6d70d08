"""A parity sink that keeps results in lists, for tests about what the runner reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MemorySink:
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    noise: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    skips: list[dict[str, Any]] = field(default_factory=list)

    def record_comparison(self, **kwargs: Any) -> None:
        self.comparisons.append(kwargs)

    def record_noise(self, **kwargs: Any) -> None:
        self.noise.append(kwargs)

    def record_candidate_error(self, **kwargs: Any) -> None:
        self.errors.append(kwargs)

    def record_skip(self, **kwargs: Any) -> None:
        self.skips.append(kwargs)

    @property
    def total(self) -> int:
        return len(self.comparisons) + len(self.errors) + len(self.skips)
