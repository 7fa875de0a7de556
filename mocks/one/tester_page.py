"""The tester page at /_mock/: plain server-rendered HTML that refreshes itself, with every value HTML-escaped."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape

from mocks.one.core import MockCore

RECENT_REQUESTS = 50

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}code,pre{font:12px ui-monospace,monospace}pre{background:#f7f7f7;padding:.6em;overflow:auto}
.removed{color:#888}.err{color:#a00}.ok{color:#060}.muted{color:#777}
"""


def _table(headers: Sequence[str], rows: Iterable[tuple[Sequence[object], str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for cells, css in rows:
        tds = "".join(f"<td>{escape('' if cell is None else str(cell))}</td>" for cell in cells)
        body.append(f'<tr class="{escape(css)}">{tds}</tr>')
    if not body:
        return '<p class="muted">None.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_tester_page(core: MockCore, base_url: str) -> str:
    """Render people, involvements, the latest requests and the active faults as one HTML page."""
    people = core.people()
    involvements = core.all_involvements()
    requests = list(reversed(core.journal(RECENT_REQUESTS)))
    faults = core.fault_state()

    people_table = _table(["person id", "state", "successor"], (((p.personId, p.state, p.successorPersonId), "") for p in people))
    involvement_table = _table(
        ["id", "person id", "team", "type", "status", "start date", "last updated", "version"],
        (
            (
                tuple(
                    i[key]
                    for key in (
                        "id",
                        "personId",
                        "serviceTeam",
                        "involvementType",
                        "status",
                        "startDate",
                        "lastUpdated",
                        "version",
                    )
                ),
                "removed" if i["status"] != "active" else "",
            )
            for i in involvements
        ),
    )
    request_table = _table(
        ["#", "time", "method", "path", "query", "status", "body", "correlation id"],
        (
            (
                (
                    r["seq"],
                    r["time"],
                    r["method"],
                    r["path"],
                    r["query"],
                    "dropped" if r["dropped"] else r["status"],
                    r["body"][:200],
                    r["correlationId"],
                ),
                "err" if r["dropped"] or (r["status"] or 0) >= 400 else "ok",
            )
            for r in requests
        ),
    )
    any_person = "yes: every well-formed id is an active person unless seeded otherwise" if core.any_person else "no"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>One-style mock</title><style>{_STYLE}</style></head>
<body>
<h1>One-style mock</h1>
<p>Listening at <code>{escape(base_url)}</code>. <a href="/docs">API docs</a> · <a href="/openapi.json">openapi.json</a> ·
<a href="/_mock/requests">journal (JSON)</a> · <a href="/_mock/involvements">involvements (JSON)</a>.
This page refreshes every 2 s.</p>
<h2>People ({len(people)} seeded; any person: {escape(any_person)})</h2>
{people_table}
<h2>Involvements ({len(involvements)}, all teams)</h2>
{involvement_table}
<h2>Latest requests (newest first, up to {RECENT_REQUESTS})</h2>
{request_table}
<h2>Active faults</h2>
<pre>{escape(json.dumps(faults, indent=2))}</pre>
</body></html>
"""
