"""What the run-time rollout state and the audit log hold: decisions and their record."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.parity.report import iso


class RuntimeState(StrEnum):
    ROLLED_BACK = "rolled_back"  # automatic, by a guard: legacy serves the route
    ABORTED = "aborted"  # manual: legacy serves the route
    PROMOTED = "promoted"  # manual, or a finished ramp: the new side serves every request of the route
    RAMPING = "ramping"  # a canary with steps: figures["percent"] is the share the new side serves now


class AuditKind(StrEnum):
    MAP_RELOAD = "map_reload"
    ROLLBACK = "rollback"
    ABORT = "abort"
    PROMOTE = "promote"
    RETRY = "retry"
    RAMP = "ramp"


AUDIT_KIND_OF = {
    RuntimeState.ROLLED_BACK: AuditKind.ROLLBACK,
    RuntimeState.ABORTED: AuditKind.ABORT,
    RuntimeState.PROMOTED: AuditKind.PROMOTE,
    RuntimeState.RAMPING: AuditKind.RAMP,
}
SUMMARY_OF = {
    RuntimeState.RAMPING: ("ramped", ""),
    RuntimeState.ROLLED_BACK: ("rolled back to legacy", ""),
    RuntimeState.ABORTED: ("aborted", ": legacy serves it"),
    RuntimeState.PROMOTED: ("promoted", ": the new side serves every request"),
}


@dataclass(frozen=True)
class RouteState:
    route_id: str
    state: RuntimeState
    reason: str
    figures: dict[str, Any]
    actor: str
    at: float
    map_sha256: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "route_id": self.route_id,
            "state": self.state.value,
            "reason": self.reason,
            "figures": self.figures,
            "actor": self.actor,
            "at": self.at,
            "time": iso(self.at),
            "map_sha256": self.map_sha256,
        }


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    kind: AuditKind
    route_id: str | None
    actor: str
    summary: str
    details: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "time": iso(self.at),
            "kind": self.kind.value,
            "route_id": self.route_id,
            "actor": self.actor,
            "summary": self.summary,
            "details": self.details,
        }
