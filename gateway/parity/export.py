"""`gateway parity export-test`: stored mismatches become a standalone pytest file.

The file embeds the route's stored (redacted) mismatching requests, its compare rules, the
fields known to be noise and the import strings of both apps. Each test replays one request
in-process against both sides and fails while they still differ in a field that is not
noise: the divergence becomes a regression test that passes once it is fixed.
"""

from __future__ import annotations

import dataclasses
import pprint
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from gateway.map_schema import ShadowRules
from gateway.parity.export_template import TEMPLATE
from gateway.parity.report import StoredSample

REPLAYABLE = frozenset({"empty", "json", "form", "text"})


@dataclasses.dataclass(frozen=True, slots=True)
class Export:
    text: str
    cases: int
    left_out: tuple[str, ...]  # samples that cannot be replayed, and why


def replay_problem(sample: StoredSample) -> str | None:
    body = sample.request.get("body", {})
    kind = body.get("kind")
    if kind not in REPLAYABLE or body.get("truncated"):
        why = "its body was truncated" if kind in REPLAYABLE or kind == "truncated" else f"its body is {kind}"
        return f"sample {sample.id} ({sample.request['method']} {sample.request['path']!r}): {why}"
    return None


def _literal(value: Any) -> str:
    return pprint.pformat(value, indent=1, width=100, sort_dicts=False)


def _rules_literal(rules: ShadowRules) -> str:
    parts = []
    for f in dataclasses.fields(rules):
        value = getattr(rules, f.name)
        shown = f"{type(value).__name__}({value.value!r})" if isinstance(value, Enum) else repr(value)
        parts.append(f"    {f.name}={shown},")
    return "ShadowRules(\n" + "\n".join(parts) + "\n)"


def render(
    *,
    route_id: str,
    rules: ShadowRules,
    noise: Iterable[tuple[str, str]],
    samples: Sequence[StoredSample],
    legacy_app: str,
    legacy_url: str | None,
    native_app: str,
) -> Export:
    cases: list[dict[str, Any]] = []
    left_out: list[str] = []
    for sample in samples:
        problem = replay_problem(sample)
        if problem is not None:
            left_out.append(problem)
            continue
        cases.append(
            {
                "sample": sample.id,
                "signature": sample.signature,
                "owner": sample.owner_side.value,
                "seen": sample.created_at,
                "request": sample.request,
                "differences": [[d["path"], d["kind"]] for d in sample.differences],
            }
        )
    left = "\n".join(f"#   {line}" for line in left_out) or "#   (none)"
    values = {
        "route_id": route_id,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": str(len(cases)),
        "left_out": left,
        "route_id_literal": repr(route_id),
        "legacy_app": repr(legacy_app),
        "legacy_url": repr(legacy_url),
        "native_app": repr(native_app),
        "rules": _rules_literal(rules),
        "noise": _literal(sorted({(str(p), str(k)) for p, k in noise})),
        "cases": _literal(cases),
    }
    text = TEMPLATE
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    compile(text, "<exported test>", "exec")  # a bug here must not write a broken file
    return Export(text, len(cases), tuple(left_out))

