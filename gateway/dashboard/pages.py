"""The dashboard's HTML: the frame every page shares, the login form, and the overview.

Everything that comes from a map, a request or a store is escaped here: route ids, paths,
field names and bodies are all written by someone else.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from urllib.parse import quote

from gateway.dashboard.charts import latency_bars, ms, progress_bar, series_name
from gateway.dashboard.data import Overview, RouteRow
from gateway.dashboard.figures import RouteFigures
from gateway.parity.report import iso

BASE = "/_gateway"
COLUMNS = (
    "route", "method and path", "owner", "mode", "canary", "requests",
    "latency p50 / p95 / p99", "5xx", "parity", "differing fields",
)
STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#111827;background:#f9fafb}
header{display:flex;align-items:center;gap:1rem;padding:.6rem 1.2rem;background:#111827;color:#f9fafb}
header h1{font-size:1.05rem;margin:0;flex:1} header a{color:#f9fafb}
header form{margin:0} button{font:inherit;cursor:pointer}
main{padding:1rem 1.2rem} h2{font-size:1rem;margin:1.4rem 0 .5rem}
section.cards{display:flex;flex-wrap:wrap;gap:1rem}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:.7rem 1rem;min-width:16rem}
.big{font-size:1.5rem;font-weight:600}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border:1px solid #e5e7eb;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f4f6;font-weight:600} td.num{text-align:right;white-space:nowrap}
.muted{color:#6b7280} .ok{color:#047857} .bad{color:#b91c1c;font-weight:600}
.banner{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;padding:.5rem .8rem;border-radius:6px}
.legacy{color:#b45309} .new{color:#1d4ed8} code{font-size:.92em}
svg.chart text{font-size:9px;fill:#6b7280} .lat div{white-space:nowrap}
form.login{max-width:22rem;margin:4rem auto;background:#fff;border:1px solid #e5e7eb;border-radius:6px;
 padding:1.2rem}
form.login input{width:100%;box-sizing:border-box;padding:.4rem;margin:.4rem 0 .8rem;font:inherit}
pre{margin:0;white-space:pre-wrap;word-break:break-word}
table.sbs td{font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;width:50%}
tr.changed td{background:#fef9c3} tr.removed td.owner,tr.added td.candidate{background:#fee2e2}
"""


def layout(title: str, body: str, *, holder: str | None = None, refresh: int = 0) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh > 0 else ""
    who = ""
    if holder is not None:
        who = (
            f'<span>signed in as <b>{escape(holder)}</b></span>'
            f'<form method="post" action="{BASE}/logout"><button type="submit">Log out</button></form>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'{meta}<link rel="icon" href="data:,"><title>{escape(title)}</title><style>{STYLE}</style></head>'
        f'<body><header><h1><a href="{BASE}/">Migration gateway</a></h1>{who}</header>'
        f"<main>{body}</main></body></html>"
    )


def message_page(title: str, message: str) -> str:
    return layout(title, f'<h2>{escape(title)}</h2><p class="banner">{escape(message)}</p>')


def login_page(message: str | None = None, next_path: str = f"{BASE}/") -> str:
    problem = f'<p class="banner" role="alert">{escape(message)}</p>' if message else ""
    form = (
        f'<form class="login" method="post" action="{BASE}/login"><h2>Gateway dashboard</h2>{problem}'
        # browsers want a username beside a password (for password managers); it is not read
        '<input type="text" name="username" value="gateway admin" autocomplete="username" hidden>'
        '<label for="token">Admin token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<button type="submit">Sign in</button>'
        '<p class="muted">The token of GATEWAY_ADMIN_TOKEN, or one of GATEWAY_ADMIN_TOKENS.</p></form>'
    )
    return layout("Sign in: gateway dashboard", form)


def route_link(route_id: str) -> str:
    return f"{BASE}/routes/{quote(route_id, safe='')}"


def pct(rate: float | None, digits: int = 1) -> str:
    return "-" if rate is None else f"{rate * 100:.{digits}f} %"


def methods_text(methods: tuple[str, ...] | None) -> str:
    return ", ".join(methods) if methods else "ANY"


def _lines(items: Iterable[str]) -> str:
    return "".join(f"<div>{item}</div>" for item in items)


def traffic_cells(figures: RouteFigures) -> str:
    traffic = _lines(f'<span class="{t.backend}">{t.backend}</span> {t.requests}' for t in figures.traffic)
    errors = _lines(
        f'<span class="{t.backend}">{t.backend}</span> {pct(t.error_rate)}'
        + (f" ({t.errors})" if t.errors else "")
        for t in figures.traffic
    )
    if figures.latency:
        latency = _lines(
            f'<span class="{s.backend}">{escape(series_name(s))}</span> '
            f"{ms(s.p50)} / {ms(s.p95)} / {ms(s.p99)} ms"
            for s in figures.latency
        ) + latency_bars(figures.latency)
    else:
        latency = '<span class="muted">no traffic yet</span>'
    return (
        f'<td class="num traffic">{traffic}</td>'
        f'<td class="lat" data-series="{len(figures.latency)}">{latency}</td>'
        f'<td class="num errors">{errors}</td>'
    )


def _parity_cells(row: RouteRow, store_error: str | None) -> str:
    s = row.parity
    if s is None:
        return f'<td class="parity" title="{escape(store_error or "")}">unavailable</td><td></td>'
    if not s.samples:
        said = "no results yet" if row.shadow_sample else "not shadowed"
        return f'<td class="parity muted">{said}</td><td></td>'
    rate = s.match_rate
    klass = "ok" if rate is not None and rate >= 0.999 else "bad"
    figure = (
        f'<span class="{klass}">{pct(rate, 2)}</span> <span class="muted">of {s.compared} compared'
        + (f", {s.candidate_errors} candidate errors" if s.candidate_errors else "")
        + "</span>"
    )
    real = [f for f in s.fields if f.real][:3]
    fields = _lines(f"<code>{escape(f.path)}</code> ({escape(f.kind)}) {f.candidate_n}x" for f in real)
    link = f'<div><a href="{escape(route_link(row.route_id))}">diff samples ({s.stored_samples})</a></div>'
    return f'<td class="parity" data-match-rate="{rate}">{figure}{link}</td><td>{fields}</td>'


def _row(row: RouteRow, store_error: str | None) -> str:
    state = f'<div class="bad">{escape(row.state)}</div>' if row.state and row.state != "ramping" else ""
    canary = "-" if row.canary_percent is None else f"{row.canary_percent:g} %"
    return (
        f'<tr data-route="{escape(row.route_id)}">'
        f'<td><a href="{escape(route_link(row.route_id))}"><code>{escape(row.route_id)}</code></a></td>'
        f"<td><code>{escape(methods_text(row.methods))} {escape(row.path)}</code></td>"
        f'<td class="{escape(row.owner)}">{escape(row.owner)}</td><td>{escape(row.mode)}{state}</td>'
        f'<td class="num">{canary}</td>{traffic_cells(row.figures)}{_parity_cells(row, store_error)}</tr>'
    )


def _map_card(o: Overview) -> str:
    last = o.last
    if last is None:
        reload = '<span class="muted">never</span>'
    elif last.ok:
        reload = f'<span class="ok">ok</span> at {iso(last.at)}'
    else:
        reload = f'<span class="bad">error</span> at {iso(last.at)}<pre>{escape(last.error or "")}</pre>'
    return (
        f'<div class="card"><div class="muted">map</div><div><code>{escape(o.map_file)}</code></div>'
        f'<div>sha256 <code title="{escape(o.sha256)}">{escape(o.sha256[:12])}</code></div>'
        f'<div>last reload: {reload}</div></div>'
    )


def _audit(o: Overview) -> str:
    if o.rollout_error:
        return f'<p class="banner">{escape(o.rollout_error)}</p>'
    if not o.audit:
        return '<p class="muted">nothing recorded yet</p>'
    rows = "".join(
        f"<tr><td>{iso(e.at)}</td><td>{escape(e.kind.value)}</td><td>{escape(e.route_id or '')}</td>"
        f"<td>{escape(e.actor)}</td><td>{escape(e.summary)}</td></tr>"
        for e in o.audit
    )
    head = "<tr><th>time (UTC)</th><th>kind</th><th>route</th><th>who</th><th>what</th></tr>"
    return f'<table id="audit">{head}{rows}</table>'


def overview_page(o: Overview, *, holder: str, refresh: int) -> str:
    progress = (
        f'<div class="card"><div class="muted">migration progress</div>'
        f'<div class="big" id="progress">{o.native} of {o.total} endpoints native</div>'
        f"{progress_bar(o.native, o.total)}</div>"
    )
    unmapped = sum(t.requests for t in o.unmapped.traffic)
    header = "<tr>" + "".join(f"<th>{name}</th>" for name in COLUMNS) + "</tr>"
    banner = f'<p class="banner" id="parity-error">{escape(o.parity_error)}</p>' if o.parity_error else ""
    body = (
        f'<section class="cards">{progress}{_map_card(o)}</section>'
        f"<h2>Routes</h2>{banner}"
        f'<table id="routes">{header}{"".join(_row(r, o.parity_error) for r in o.rows)}</table>'
        f'<p class="muted">requests matching no map entry (served by legacy): {unmapped}. '
        "Requests, latency and 5xx: this gateway's Prometheus metrics; a side marked (shadow) answered "
        "the copies made off the response path (the other side, or the owner rerun to learn noise). "
        "Parity: the parity store.</p>"
        f"<h2>Audit log</h2>{_audit(o)}"
    )
    return layout("Gateway dashboard", body, holder=holder, refresh=refresh)
