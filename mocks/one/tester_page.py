"""The tester console at /_mock/: server-rendered HTML (every value HTML-escaped) that /_mock/static/console.js makes live.

The page shows the state and the journal without JavaScript; the script turns its forms into control-plane calls,
shows the control plane's answer (its error message on a bad input) and refreshes the live parts every 2 s.
Nothing is loaded from anywhere but the mock itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from mocks.one.core import MockCore
from mocks.one.errors import ApiError
from mocks.one.journal import JOURNAL_CAPACITY, JournalPage, JournalQuery

#: Journal rows per page unless `limit` says otherwise, and the most the page shows at once.
DEFAULT_ROWS = 50
MAX_ROWS = 500
ROW_CHOICES = (20, 50, 100, 200, 500)
#: The query parameters /_mock/ accepts: the journal's filters and paging (blank ones are ignored).
PAGE_PARAMETERS = ("method", "status", "path", "injected", "key", "before", "limit")
METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH")
PERSON_STATES = ("active", "archived", "restricted", "merged")


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


_BREAK_AFTER = re.compile(r"(?<=[/_\-.?&=,:])")


def _wrap(value: object) -> str:
    """Escape a long identifier, letting it wrap after its separators (a path at its slashes) rather than mid-word."""
    return "<wbr>".join(_e(part) for part in _BREAK_AFTER.split("" if value is None else str(value)))


def _table(headers: Sequence[str], rows: Sequence[str], css: str, empty: str) -> str:
    """A fixed-layout table; console.css gives each `css` table its column widths (the CSP allows no inline style)."""
    if not rows:
        return f'<p class="muted empty">{_e(empty)}</p>'
    cols = "<col>" * len(headers)
    head = "".join(f"<th scope=col>{_e(h)}</th>" for h in headers)
    return f'<table class="{css}"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _options(choices: Iterable[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{_e(value)}"{" selected" if value == selected else ""}>{_e(label)}</option>' for value, label in choices
    )


def _error_box(error: ApiError) -> str:
    names = error.details.get("parameters") or error.details.get("fields") or []
    named = f" ({_e(', '.join(str(n) for n in names))})" if isinstance(names, list) and names else ""
    return f'<p class="error" role="alert"><strong>{_e(error.code)}</strong>: {_e(error.message)}{named}</p>'


# --------------------------------------------------------------------------- people


def _people_section(core: MockCore) -> str:
    people = core.people()
    rows = []
    for person in people:
        pid = _e(person.personId)
        actions = "".join(
            f'<button type=button data-person-state="{state}" data-person="{pid}">{label}</button>'
            for state, label in (("active", "activate"), ("archived", "archive"), ("restricted", "restrict"))
            if state != person.state
        )
        merge = (
            f'<span class="merge"><input class="mono" name="successor" aria-label="successor of {pid}"'
            f' placeholder="successor id"><button type=button data-person-merge="{pid}">merge</button></span>'
        )
        rows.append(
            f'<tr data-person-row="{pid}" class="state-{_e(person.state)}"><td class=mono>{_wrap(person.personId)}</td>'
            f'<td><span class="badge st-{_e(person.state)}">{_e(person.state)}</span></td>'
            f"<td class=mono>{_wrap(person.successorPersonId)}</td><td><div class=actions>{actions}{merge}</div></td></tr>"
        )
    any_person = (
        "Any person: on (every well-formed id is an active person unless seeded otherwise)."
        if core.any_person
        else "Any person: off (only seeded people exist)."
    )
    table = _table(
        ["person id", "state", "successor", "change by hand in One"],
        rows,
        "people",
        "Nobody seeded yet.",
    )
    return f"""<div id="people-live" data-live>
<p class="muted">{len(people)} seeded. {_e(any_person)}</p>
{table}
</div>"""


# --------------------------------------------------------------------------- involvements


def _involvement_section(core: MockCore) -> str:
    teams = set(core.teams())
    involvements = core.all_involvements()
    rows = []
    for inv in involvements:
        ours = inv["serviceTeam"] in teams
        team_badge = (
            '<span class="badge ours" title="a configured client\'s team">ours</span>'
            if ours
            else '<span class="badge other" title="no client of this mock acts for this team">other team</span>'
        )
        removable = inv["status"] == "active"
        action = (
            f'<button type=button data-remove-involvement="{_e(inv["id"])}" title="remove by hand in One (drift)">remove</button>'
            if removable
            else '<span class="muted">removed</span>'
        )
        rows.append(
            f'<tr data-involvement="{_e(inv["id"])}" class="{"" if removable else "removed"}">'
            f"<td class=mono>{_e(inv['id'])}</td><td class=mono>{_wrap(inv['personId'])}</td>"
            f"<td>{_e(inv['serviceTeam'])} {team_badge}</td><td class=mono>{_wrap(inv['involvementType'])}</td>"
            f'<td><span class="badge st-{_e(inv["status"])}">{_e(inv["status"])}</span></td>'
            f"<td>{_e(inv['startDate'])}</td><td>{_wrap(inv['lastUpdated'])}</td><td>{_e(inv['version'])}</td>"
            f"<td>{action}</td></tr>"
        )
    active = sum(1 for inv in involvements if inv["status"] == "active")
    table = _table(
        ["id", "person id", "team", "type", "status", "start date", "last updated", "version", ""],
        rows,
        "involvements",
        "No involvements yet.",
    )
    return f"""<div id="involvements-live" data-live>
<p class="muted">{len(involvements)} stored, {active} active, every team.</p>
{table}
</div>"""


# --------------------------------------------------------------------------- faults


def _rule_answer(rule: Mapping[str, Any]) -> str:
    parts = []
    if rule["dropConnection"]:
        parts.append("drop connection")
    if rule["status"] is not None:
        parts.append(f"{rule['status']}{' ' + rule['code'] if rule['code'] else ''}")
    if rule["latencyMs"]:
        parts.append(f"+{rule['latencyMs']} ms")
    return ", ".join(parts) or "nothing (matches only)"


def _rules_table(state: Mapping[str, Any]) -> str:
    rows = []
    for entry in state["rules"]:
        rule = entry["rule"]
        spent = entry["spent"]
        times = "unlimited" if rule["times"] is None else f"{rule['times']} ({entry['remaining']} left)"
        badge = '<span class="badge spent">spent</span>' if spent else '<span class="badge live">active</span>'
        rows.append(
            f'<tr data-rule="{entry["id"]}" class="{"spent" if spent else "active"}"><td>#{entry["id"]}</td>'
            f"<td>{badge}</td><td class=mono>{_e(rule['method'])}</td><td class=mono>{_wrap(rule['path'])}</td>"
            f"<td>{_e(_rule_answer(rule))}</td><td>{_e(rule['retryAfter'])}</td><td>{_e(rule['probability'])}</td>"
            f"<td>{'yes' if rule['afterCommit'] else ''}</td><td>{entry['fired']}</td><td>{_e(times)}</td>"
            f'<td><button type=button data-remove-rule="{entry["id"]}">delete</button></td></tr>'
        )
    return _table(
        ["rule", "state", "method", "path glob", "answer", "retry-after", "probability", "after commit", "fired", "times", ""],
        rows,
        "rules",
        "No fault rules: every request gets the API's own answer.",
    )


def _settings_form(state: Mapping[str, Any]) -> str:
    limit = state["rateLimit"] or {}

    def field(name: str, label: str, value: object, hint: str = "") -> str:
        shown = "" if value is None else str(value)
        placeholder = f' placeholder="{_e(hint)}"' if hint else ""
        return (
            f'<label>{_e(label)}<input name="{name}" class="num" value="{_e(shown)}" data-initial="{_e(shown)}"'
            f' inputmode="decimal"{placeholder}></label>'
        )

    rate = "off" if not limit else f"{limit['perSecond']}/s, burst {limit['burst'] or 'perSecond rounded up'}"
    return f"""<form id="settings-form" class="inline" data-action="settings" data-live novalidate>
{field("seed", "seed", state["seed"])}
{field("rateLimit.perSecond", "rate limit: per second", limit.get("perSecond"), "off")}
{field("rateLimit.burst", "burst", limit.get("burst"), "= per second")}
{field("tokenTtlSeconds", "token lifetime (s)", state["tokenTtlSeconds"])}
{field("listingDelaySeconds", "listing delay (s)", state["listingDelaySeconds"])}
<button type=submit>apply settings</button>
<button type=button data-clear-rate-limit>remove rate limit</button>
<button type=button data-clear-faults class="danger">clear all faults</button>
<p class="muted now">Now: rate limit {_e(rate)}; seed {_e(state["seed"])}. Only changed fields are sent.</p>
<p class="form-error" role="alert" hidden></p>
</form>"""


def _rule_form() -> str:
    method = _options([("*", "any"), *((m, m) for m in METHODS)], "*")
    return f"""<form id="rule-form" class="inline" data-action="rule" novalidate>
<label>method<select name="method">{method}</select></label>
<label class="wide">path glob<input name="path" class="mono" placeholder="/api/v1/people/*/involvements"></label>
<label>status<input name="status" class="num" inputmode="numeric" placeholder="503"></label>
<label>code<input name="code" class="mono" placeholder="from status"></label>
<label>retryAfter (s)<input name="retryAfter" class="num" inputmode="numeric"></label>
<label>probability<input name="probability" class="num" inputmode="decimal" placeholder="1"></label>
<label>times<input name="times" class="num" inputmode="numeric" placeholder="unlimited"></label>
<label>latencyMs<input name="latencyMs" class="num" inputmode="numeric" placeholder="0"></label>
<span class="checks"><label class="check"><input type=checkbox name="afterCommit"> afterCommit</label>
<label class="check"><input type=checkbox name="dropConnection"> dropConnection</label>
<button type=submit>add rule</button></span>
<p class="form-error" role="alert" hidden></p>
</form>"""


def _faults_section(core: MockCore) -> tuple[str, str, dict[str, Any]]:
    state = core.fault_state()
    spent = sum(1 for rule in state["rules"] if rule["spent"])
    rules = f"""<div id="rules-live" data-live>
<p class="muted">{len(state["rules"])} rule(s), {spent} spent.
The first matching rule that fires answers; spent rules stay listed.</p>
{_rules_table(state)}
</div>"""
    return rules, _settings_form(state), state


# --------------------------------------------------------------------------- journal


def _params(query: JournalQuery, **changes: object) -> str:
    values: dict[str, object] = {
        "method": query.method,
        "status": query.status,
        "path": query.path,
        "injected": None if query.injected is None else str(query.injected).lower(),
        "key": query.idempotency_key,
        "limit": query.limit if query.limit != DEFAULT_ROWS else None,
        "before": query.before,
    }
    values.update(changes)
    kept = {name: str(value) for name, value in values.items() if value is not None}
    return "?" + urlencode(kept) if kept else ""


def _fault_cell(record: Mapping[str, Any], rules: Mapping[int, Mapping[str, Any]]) -> str:
    rule_id = record["faultRule"]
    described = ""
    if rule_id is not None:
        rule = rules.get(rule_id)
        described = f"{rule['method']} {rule['path']} → {_rule_answer(rule)}" if rule else "no longer configured"
    if record["rateLimited"]:
        return '<span class="badge injected">injected</span> <span class="rule">rate limit</span>'
    if record["injectedFault"]:
        return f'<span class="badge injected">injected</span> <span class="rule" title="{_e(described)}">rule #{rule_id}</span>'
    if rule_id is not None:
        return f'<span class="badge delayed">delayed</span> <span class="rule" title="{_e(described)}">rule #{rule_id}</span>'
    return ""


def _journal_rows(page: JournalPage, rules: Mapping[int, Mapping[str, Any]], query: JournalQuery) -> list[str]:
    rows = []
    for record in reversed(page.items):
        headers = record["headers"]
        status = "dropped" if record["dropped"] else ("…" if record["status"] is None else record["status"])
        failed = record["dropped"] or (record["status"] or 0) >= 400
        classes = " ".join(c for c in ("req", "injected" if record["injectedFault"] else "", "failed" if failed else "") if c)
        key = headers.get("idempotency-key")
        key_cell = ""
        if key is not None:
            key_link = _params(JournalQuery(limit=query.limit, idempotency_key=key))
            key_cell = f'<a class=mono href="/_mock/{_e(key_link)}#journal" title="every request with this key">{_wrap(key)}</a>'
        query_text = f'<span class="muted">?{_wrap(record["query"])}</span>' if record["query"] else ""
        seq = record["seq"]
        rows.append(
            f'<tr class="{classes}" data-seq="{seq}" data-injected="{str(record["injectedFault"]).lower()}"'
            f' data-fault-rule="{_e(record["faultRule"])}">'
            f'<td><button type=button class="toggle" data-toggle="{seq}" aria-expanded="false"'
            f' aria-label="headers and body of request {seq}">▸</button>{seq}</td>'
            f'<td title="{_e(record["time"])}">{_e(record["time"][11:19])}</td>'
            f"<td class=mono>{_e(record['method'])}</td><td class=mono>{_wrap(record['path'])}{query_text}</td>"
            f'<td class="status">{_e(status)}</td><td class="mono code">{_wrap(record["errorCode"])}</td>'
            f"<td>{_fault_cell(record, rules)}</td><td class=key>{key_cell}</td>"
            f"<td class=mono>{_e(headers.get('if-match'))}</td><td class='mono corr'>{_wrap(record['correlationId'])}</td></tr>"
        )
        header_rows = "".join(f"<tr><th scope=row>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in sorted(headers.items()))
        body = f"<pre>{_e(record['body'])}</pre>" if record["body"] else '<p class="muted">(no body)</p>'
        rows.append(
            f'<tr class="detail" data-detail="{seq}" hidden><td colspan=10><div class="detail-grid">'
            f'<table class="headers mono"><tbody>{header_rows}</tbody></table><div>{body}</div></div></td></tr>'
        )
    return rows


def _pager(page: JournalPage, query: JournalQuery) -> str:
    links = []
    if page.has_newer:
        links.append(f'<a href="/_mock/{_e(_params(query, before=None))}#journal" data-page="latest">&laquo; latest</a>')
        newer = _params(query, before=page.newer_before)
        links.append(f'<a href="/_mock/{_e(newer)}#journal" data-page="newer">&lsaquo; newer</a>')
    if page.older_before is not None:
        older = _params(query, before=page.older_before)
        links.append(f'<a href="/_mock/{_e(older)}#journal" data-page="older">older &rsaquo;</a>')
    if page.items:
        first, last = page.items[-1]["seq"], page.items[0]["seq"]
        shown = f"Showing #{first} to #{last}: {len(page.items)} of {page.matched} matching"
    else:
        shown = "No request matches" if query != JournalQuery(limit=query.limit) else "No request received yet"
    if query.before is not None:
        shown += f" before #{query.before}"
    return f'<p class="pager"><span class="shown">{_e(shown)}</span> {" ".join(links)}</p>'


def _journal_live(core: MockCore, query: JournalQuery | None, problem: ApiError | None, rules: Mapping[int, Any]) -> str:
    if query is None:
        assert problem is not None  # the page renders either a query or the reason it has none
        return f'<div id="journal-live" data-live>{_error_box(problem)}</div>'
    page = core.journal_page(query)
    table = _table(
        ["#", "time", "method", "path", "status", "error code", "fault", "Idempotency-Key", "If-Match", "correlation id"],
        _journal_rows(page, rules, query),
        "journal",
        "Nothing to show.",
    )
    json_link = f"/_mock/requests{_params(query, limit=query.limit)}"
    return f"""<div id="journal-live" data-live>
{_pager(page, query)}
{table}
<p class="muted">Newest first. Only One API calls are recorded (the last {JOURNAL_CAPACITY:,}).
<a href="{_e(json_link)}">This view as JSON</a>.</p>
</div>"""


def _journal_filter(query: JournalQuery | None, raw: Mapping[str, str]) -> str:
    """The filter form, showing the filters in force (or, after a bad one, what was typed)."""
    if query is None:
        given = dict(raw)
    else:
        given = {
            "method": query.method or "",
            "status": query.status or "",
            "path": query.path or "",
            "injected": "" if query.injected is None else str(query.injected).lower(),
            "key": query.idempotency_key or "",
            "limit": str(query.limit or DEFAULT_ROWS),
        }
    methods = _options([("", "any"), *((m, m) for m in METHODS)], given.get("method", "").upper())
    injected = _options([("", "any"), ("true", "injected"), ("false", "not injected")], given.get("injected", ""))
    rows = _options([(str(n), str(n)) for n in ROW_CHOICES], given.get("limit", str(DEFAULT_ROWS)))
    status, path, key = (_e(given.get(name, "")) for name in ("status", "path", "key"))
    return f"""<form id="journal-filter" class="inline" method="get" action="/_mock/">
<label>method<select name="method">{methods}</select></label>
<label>status<input name="status" class="mid" value="{status}" placeholder="503, 5xx, dropped"></label>
<label class="wide">path glob<input name="path" class="mono" value="{path}" placeholder="/api/v1/people/*/involvements"></label>
<label>injected<select name="injected">{injected}</select></label>
<label>Idempotency-Key<input name="key" class="mono" value="{key}"></label>
<label>rows<select name="limit">{rows}</select></label>
<button type=submit>filter</button> <a href="/_mock/#journal" class="button">clear</a>
</form>"""


# --------------------------------------------------------------------------- the page


def render_tester_page(
    core: MockCore, base_url: str, query: JournalQuery | None, problem: ApiError | None, raw: Mapping[str, str] | None = None
) -> str:
    """Render the console: people, involvements, fault rules and settings, and one page of the journal with its filters."""
    rules_html, settings_html, fault_state = _faults_section(core)
    rules = {entry["id"]: entry["rule"] for entry in fault_state["rules"]}
    teams = core.teams()
    team_options = "".join(f'<option value="{_e(t)}">' for t in teams)
    default_team = teams[0] if teams else "PIAS"
    state_options = _options([(s, s) for s in PERSON_STATES], "active")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>One-style mock · console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/_mock/static/console.css">
<script src="/_mock/static/console.js" defer></script>
<noscript><meta http-equiv="refresh" content="5"></noscript>
</head>
<body>
<header>
<h1>One-style mock <span class="muted">console</span></h1>
<p>Listening at <code>{_e(base_url)}</code> · client teams: <code>{_e(", ".join(teams))}</code> ·
<a href="/docs">API docs</a> · <a href="/openapi.json">openapi.json</a> · JSON:
<a href="/_mock/people">people</a>, <a href="/_mock/involvements">involvements</a>, <a href="/_mock/faults">faults</a>,
<a href="/_mock/requests?limit=50">journal</a></p>
<p class="liveline"><label class="check"><input type=checkbox id="live" checked> live: refresh every 2 s</label>
<span id="refreshed" class="muted"></span>
<button type=button data-reset class="danger">reset everything</button></p>
<noscript><p class="error">JavaScript is off: this page shows the state and reloads every 5 s;
its forms need JavaScript.</p></noscript>
</header>
<div id="notice" role="status" aria-live="polite" hidden></div>
<main>
<section id="people"><h2>People</h2>
<form id="seed-form" class="inline" data-action="seed" novalidate>
<label class="wide">person ids (space or comma separated)
<input name="personIds" class="mono" placeholder="P0001234 P0001235"></label>
<label>state<select name="state">{state_options}</select></label>
<label>successor (merged)<input name="successorPersonId" class="mono"></label>
<button type=submit>seed</button>
<p class="form-error" role="alert" hidden></p>
</form>
{_people_section(core)}
</section>
<section id="involvements"><h2>Involvements <span class="muted">(drift: change One by hand)</span></h2>
<form id="involvement-form" class="inline" data-action="involvement" novalidate>
<label>person id<input name="personId" class="mono"></label>
<label>service team<input name="serviceTeam" class="mono" list="teams" value="{_e(default_team)}"></label>
<datalist id="teams">{team_options}</datalist>
<label class="wide">type (blank: TEAM_WORKING_WITH_FAMILY)<input name="involvementType" class="mono"></label>
<label>status<select name="status">{_options([("active", "active"), ("removed", "removed")], "active")}</select></label>
<button type=submit>add by hand</button>
<p class="form-error" role="alert" hidden></p>
</form>
{_involvement_section(core)}
</section>
<section id="faults"><h2>Faults</h2>
<h3>Add a rule</h3>
{_rule_form()}
<h3>Rules</h3>
{rules_html}
<h3>Settings</h3>
{settings_html}
</section>
<section id="journal"><h2>Request journal</h2>
{_journal_filter(query, raw or {})}
{_journal_live(core, query, problem, rules)}
</section>
</main>
</body></html>
"""
