"""One route's page: its figures, field verdicts, and stored mismatch samples side by side.

The answers are laid out as `gateway parity --route` lays them out in a terminal (the same
lines, from gateway.parity.render, aligned with difflib), in two HTML columns instead.
Samples were redacted before they were stored; they are escaped here all the same.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from html import escape
from itertools import zip_longest
from typing import Any

from gateway.dashboard.data import RouteDetail
from gateway.dashboard.pages import layout, methods_text, pct, traffic_cells
from gateway.parity.render import _body, _capture  # the terminal view's lines: one layout for both

_ROW_CLASS = {"equal": "same", "replace": "changed", "delete": "removed", "insert": "added"}


def aligned(left: list[str], right: list[str]) -> Iterator[tuple[str, str, str]]:
    """(kind, left line, right line): equal lines side by side, differing runs paired up."""
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        for a, b in zip_longest(left[i1:i2], right[j1:j2], fillvalue=""):
            yield _ROW_CLASS[op], a, b


def _sample(sample: dict[str, Any]) -> str:
    request = sample["request"]
    query = f"?{request['query']}" if request["query"] else ""
    owner = sample["owner_side"]
    candidate = "new" if owner == "legacy" else "legacy"
    sent = [f"{name}: {value}" for name, value in request["headers"]]
    if request["body"]["kind"] != "empty":
        sent += ["", *_body(request["body"])]
    rows = "".join(
        f'<tr class="{kind}"><td class="owner"><pre>{escape(a)}</pre></td>'
        f'<td class="candidate"><pre>{escape(b)}</pre></td></tr>'
        for kind, a, b in aligned(_capture(sample["owner"]), _capture(sample["candidate"]))
    )
    differences = "".join(
        f"<li><code>{escape(d['path'])}</code> ({escape(d['kind'])}): {escape(owner)} "
        f"<code>{escape(_shown(d['owner']))}</code> vs {escape(candidate)} "
        f"<code>{escape(_shown(d['candidate']))}</code></li>"
        for d in sample["differences"]
    )
    return (
        f'<article class="sample card" id="sample-{int(sample["id"])}">'
        f"<h3>sample {int(sample['id'])} <span class=\"muted\">signature {escape(sample['signature'])}, "
        f"{escape(sample['created_at'])}</span></h3>"
        f"<p><code>{escape(request['method'])} {escape(request['path'] + query)}</code></p>"
        f"<details><summary>request headers and body</summary>"
        f"<pre>{escape(chr(10).join(sent))}</pre></details>"
        f'<table class="sbs"><tr><th class="{escape(owner)}">{escape(owner)} (owner)</th>'
        f'<th class="{escape(candidate)}">{escape(candidate)} (candidate)</th></tr>{rows}</table>'
        f"<p>differences:</p><ul>{differences}</ul></article>"
    )


def _shown(rendered: str | None) -> str:
    return "(absent)" if rendered is None else rendered


def _summary(d: dict[str, Any]) -> str:
    skipped = ", ".join(f"{escape(why)} {n}" for why, n in d["skipped"].items()) or "none"
    latency = "".join(
        f'<div><span class="{side}">{side}</span> p50 {_ms(lat["p50"])} / p95 {_ms(lat["p95"])} / '
        f'p99 {_ms(lat["p99"])} ms ({lat["count"]} measured)</div>'
        for side, lat in d["latency_ms"].items()
    )
    cutover = ""
    if "cutover" in d:
        c = d["cutover"]
        cutover = (
            '<div>cut-over: <span class="ok">ready</span></div>' if c["ready"]
            else f'<div>cut-over: <span class="bad">not ready</span>: {escape("; ".join(c["reasons"]))}</div>'
        )
    return (
        f'<div class="card" id="summary"><div class="big">{pct(d["match_rate"], 2)} matched</div>'
        f"<div>{d['samples']} shadowed, {d['compared']} compared, {d['mismatched']} mismatched, "
        f"{d['candidate_errors']} candidate errors, {d['noise_runs']} noise runs; skipped: {skipped}</div>"
        '<div class="muted">latency in the parity store (both sides of each comparison):</div>'
        f"{latency}{cutover}</div>"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _fields(d: dict[str, Any]) -> str:
    if not d["fields"]:
        return '<p class="muted">no field has differed</p>'
    rows = "".join(
        f"<tr><td><code>{escape(f['path'])}</code></td><td>{escape(f['kind'])}</td>"
        f'<td class="num">{f["count"]}</td>'
        f'<td class="num">{pct(f["rate"], 2)}</td><td class="num">{pct(f["noise_rate"], 2)}</td>'
        f'<td class="{"bad" if f["verdict"] == "real" else "muted"}">{escape(f["verdict"])}</td></tr>'
        for f in d["fields"]
    )
    head = "<tr><th>field</th><th>kind</th><th>count</th><th>rate</th><th>noise rate</th><th>verdict</th>"
    head += "</tr>"
    return f'<table id="fields">{head}{rows}</table>'


def route_page(r: RouteDetail, *, holder: str) -> str:
    parts = [f"<h2>Route <code>{escape(r.route_id)}</code></h2>"]
    if r.row is None:
        parts.append('<p class="muted">no longer in the map: stored results only</p>')
    else:
        row = r.row
        parts.append(
            f"<p><code>{escape(methods_text(row.methods))} {escape(row.path)}</code> · owner "
            f'<span class="{escape(row.owner)}">{escape(row.owner)}</span> · {escape(row.mode)}</p>'
            "<table><tr><th>requests</th><th>latency p50 / p95 / p99 (metrics)</th><th>5xx</th></tr>"
            f"<tr>{traffic_cells(row.figures)}</tr></table>"
        )
    if r.parity_error:
        parts.append(f'<p class="banner" id="parity-error">{escape(r.parity_error)}</p>')
    elif r.detail is None or not (r.detail["samples"] or r.detail["skipped"]):
        parts.append('<p class="muted">no shadow results for this route yet</p>')
    if r.detail is not None:
        d = r.detail
        parts += [_summary(d), "<h2>Fields</h2>", _fields(d), "<h2>Mismatch samples</h2>"]
        samples = d["mismatch_samples"]
        parts += [_sample(s) for s in samples] or ['<p class="muted">no samples stored</p>']
    return layout(f"{r.route_id}: gateway dashboard", "".join(parts), holder=holder)
