"""Plain-text views of the parity data for the terminal: tables, and sample answers side by side."""

from __future__ import annotations

import difflib
import json
from itertools import zip_longest
from typing import Any

from gateway.parity.cutover import CutoverVerdict

_MARKS = {"equal": " ", "replace": "!", "delete": "<", "insert": ">"}


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else (f"{value:.1f}" if value < 100 else f"{value:.0f}")


def _p50_p95(latency: dict[str, Any]) -> str:
    return f"{_ms(latency['p50'])}/{_ms(latency['p95'])} ms"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _field(f: dict[str, Any]) -> str:
    return f"{f['path']} ({f['kind']}) {f['count']}x"


def verdict_line(v: CutoverVerdict) -> str:
    if v.ready:
        ratio = f"{v.p95_ratio:.2f}x" if v.p95_ratio is not None else "-"
        return (
            f"{v.route_id}: ready ({v.samples} samples, mismatch {_pct(v.mismatch_rate)} %, "
            f"p95 new {_ms(v.p95_new)} ms vs legacy {_ms(v.p95_legacy)} ms = {ratio})"
        )
    return f"{v.route_id}: NOT READY: {'; '.join(v.reasons)}"


def overview_text(data: dict[str, Any]) -> str:
    routes = data["routes"]
    if not routes:
        return "the parity store holds no shadow results yet"
    rows = [["ROUTE", "SAMPLES", "MATCH %", "MISMATCHED", "ERRORS", "SKIPPED"]]
    rows[0] += ["LEGACY p50/p95", "NEW p50/p95"]
    for r in routes:
        rows.append(
            [
                r["route_id"],
                str(r["samples"]),
                _pct(r["match_rate"]),
                str(r["mismatched"]),
                str(r["candidate_errors"]),
                str(sum(r["skipped"].values())),
                _p50_p95(r["latency_ms"]["legacy"]),
                _p50_p95(r["latency_ms"]["new"]),
            ]
        )
    lines = _table(rows)
    for r in routes:
        notes = []
        if r["top_fields"]:
            notes.append("  differing: " + ", ".join(_field(f) for f in r["top_fields"][:5]))
        if r["noise_fields"]:
            notes.append("  noise: " + ", ".join(f"{f['path']} ({f['kind']})" for f in r["noise_fields"][:5]))
        if "cutover" in r and not r["cutover"]["ready"]:
            notes.append("  cut-over: not ready: " + "; ".join(r["cutover"]["reasons"]))
        if notes:
            lines += ["", r["route_id"], *notes]
    return "\n".join(lines)


def route_text(detail: dict[str, Any], width: int = 120) -> str:
    d = detail
    owner = f" (owner {d['owner']})" if "owner" in d else ""
    lines = [
        f"route {d['route_id']}{owner}: {d['samples']} samples, {d['compared']} compared, "
        f"{_pct(d['match_rate'])} % matched, {d['mismatched']} mismatched, "
        f"{d['candidate_errors']} candidate errors, {d['noise_runs']} noise runs",
    ]
    if d["skipped"]:
        lines.append("skipped: " + ", ".join(f"{why} {n}" for why, n in d["skipped"].items()))
    for side in ("legacy", "new"):
        lat = d["latency_ms"][side]
        lines.append(
            f"latency {side}: p50 {_ms(lat['p50'])} ms, p95 {_ms(lat['p95'])} ms, "
            f"p99 {_ms(lat['p99'])} ms ({lat['count']} measured)"
        )
    if "cutover" in d:
        c = d["cutover"]
        lines.append("cut-over: ready" if c["ready"] else "cut-over: NOT READY: " + "; ".join(c["reasons"]))
    if d["fields"]:
        rows = [["FIELD", "KIND", "COUNT", "RATE %", "NOISE RATE %", "VERDICT"]]
        for f in d["fields"]:
            rows.append(
                [f["path"], f["kind"], str(f["count"]), _pct(f["rate"]), _pct(f["noise_rate"]), f["verdict"]]
            )
        lines += ["", *_table(rows)]
    noisy = sorted({f["path"] for f in d["fields"] if f["verdict"] == "noise"})
    if noisy:
        # noise is already left out of the verdicts; ignoring it stops it being tracked at all
        hint = "to ignore the noise, add to this route's shadow in the map"
        lines += ["", f"{hint}: ignore: [{', '.join(noisy)}]"]
    for sample in d["mismatch_samples"]:
        lines += ["", *_sample(sample, width)]
    return "\n".join(lines)


def _sample(sample: dict[str, Any], width: int) -> list[str]:
    request = sample["request"]
    query = f"?{request['query']}" if request["query"] else ""
    owner = sample["owner_side"]
    candidate = "new" if owner == "legacy" else "legacy"
    out = [
        f"sample {sample['id']} (signature {sample['signature']}, {sample['created_at']}): "
        f"{request['method']} {request['path']}{query}"
    ]
    out += [f"  {name}: {value}" for name, value in request["headers"]]
    if request["body"]["kind"] != "empty":
        out += [f"  {line}" for line in _body(request["body"])]
    col = max(30, (width - 5) // 2)
    left, right = _capture(sample["owner"]), _capture(sample["candidate"])
    out.append(f"  {(owner + ' (owner)').ljust(col)} | {candidate} (candidate)")
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        for a, b in zip_longest(left[i1:i2], right[j1:j2], fillvalue=""):
            a_parts, b_parts = _chunks(a, col), _chunks(b, col)
            for n, (x, y) in enumerate(zip_longest(a_parts, b_parts, fillvalue="")):
                mark = _MARKS[op] if n == 0 else " "
                out.append(f"{mark} {x.ljust(col)} | {y}".rstrip())
    out.append("  differences:")
    for diff in sample["differences"]:
        shown = f"{owner} {_value(diff['owner'])} vs {candidate} {_value(diff['candidate'])}"
        out.append(f"    {diff['path']} ({diff['kind']}): {shown}")
    return out


def _value(rendered: str | None) -> str:
    return "(absent)" if rendered is None else rendered


def _chunks(line: str, size: int) -> list[str]:
    return [line[i : i + size] for i in range(0, len(line), size)] or [""]


def _capture(capture: dict[str, Any]) -> list[str]:
    lines = [f"status {capture['status']}"] + [f"{name}: {value}" for name, value in capture["headers"]]
    return [*lines, "", *_body(capture["body"])]


def _body(body: dict[str, Any]) -> list[str]:
    kind = body["kind"]
    if kind == "json":
        return json.dumps(body["value"], indent=2, ensure_ascii=False).splitlines()
    if kind == "form":
        return [f"{name}={value}" for name, value in body["fields"]]
    if kind == "text":
        more = [f"... (truncated, {body['length']} bytes in all)"] if body.get("truncated") else []
        return [*body["text"].splitlines(), *more]
    if kind == "multipart":
        return [
            f"part {p['name']}: {p['value']}"
            if "value" in p
            else f"part {p['name']}: file {p['filename']!r}, {p['length']} bytes, sha256 {p['sha256'][:16]}"
            for p in body["parts"]
        ]
    if kind == "binary":
        return [f"<binary: {body['length']} bytes, sha256 {body['sha256'][:16]}>"]
    if kind == "truncated":
        return ["<body not kept: larger than max_body_bytes>"]
    return ["<empty body>"]
