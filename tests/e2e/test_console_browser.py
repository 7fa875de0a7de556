"""The mock's tester console driven in real headless Chromium (Playwright on Debian's chromium), offline, against real syncs.

Every test fails if the page asks for anything but the mock, logs a script error, or breaks its content policy.
Set CONSOLE_SCREENSHOT=docs/screenshots/tester-console.png to keep the layout test's screenshot.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.browser import CHROMIUM_ARGS, chromium_path, unavailable
from tests.e2e.conftest import CLIENT_ID, CLIENT_SECRET, E2E, HTTP_TIMEOUT, TEAM, record

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CREATE_GLOB = "/api/v1/people/*/involvements"
LIST_PATH = "/api/v1/involvements"
WIDTH = 1280
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WAIT_MS = 10_000
REFUSAL_LOGGED = re.compile(r"^Failed to load resource: the server responded with a status of (400|422) ")

try:
    from playwright.sync_api import Locator, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - playwright is in the dev extra
    sync_playwright = None


@dataclass
class Console:
    """The console open in Chromium, and what the page tried that it must not."""

    page: Page
    url: str
    external: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, query: str = "") -> None:
        self.page.goto(f"{self.url}/_mock/{query}")
        expect(self.page.locator("#journal-live")).to_be_visible()

    def rows(self) -> Locator:
        return self.page.locator("#journal-live tr.req")

    def filter_journal(self, **fields: str) -> None:
        """Fill the journal's filter form as a tester would and submit it; wait for the filtered page."""
        form = self.page.locator("#journal-filter")
        for name, value in fields.items():
            control = form.locator(f"[name={name}]")
            if control.evaluate("e => e.tagName") == "SELECT":
                control.select_option(value)
            else:
                control.fill(value)
        with self.page.expect_navigation():
            form.locator("button[type=submit]").click()

    def submit(self, form_id: str, **fields: str | bool) -> None:
        """Fill one of the console's forms and submit it."""
        form = self.page.locator(f"#{form_id}")
        for name, value in fields.items():
            control = form.locator(f"[name='{name}']")
            if isinstance(value, bool):
                control.set_checked(value)
            elif control.evaluate("e => e.tagName") == "SELECT":
                control.select_option(value)
            else:
                control.fill(value)
        form.locator("button[type=submit]").click()

    def form_error(self, form_id: str) -> Locator:
        return self.page.locator(f"#{form_id} .form-error")


@pytest.fixture
def console(e2e: E2E, tmp_path: Path) -> Iterator[Console]:
    """Chromium with a fresh profile at 1280 px, every request that is not for the mock refused and recorded."""
    executable = chromium_path()
    if sync_playwright is None:
        unavailable("the playwright package is not installed")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            args=list(CHROMIUM_ARGS),
            headless=True,
            viewport={"width": WIDTH, "height": 900},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(WAIT_MS)
            opened = Console(page, e2e.mock.url)

            def guard(route: Any) -> None:
                if route.request.url.startswith(e2e.mock.url + "/"):
                    route.continue_()
                else:
                    opened.external.append(route.request.url)
                    route.abort()

            context.route("**/*", guard)
            page.on("pageerror", lambda error: opened.errors.append(f"page error: {error}"))

            def on_console(message: Any) -> None:
                # Chromium logs every 4xx answer; a refusal the test provoked (400, 422) is the point, not a fault.
                if message.type == "error" and not REFUSAL_LOGGED.search(message.text):
                    opened.errors.append(f"console {message.type}: {message.text}")

            page.on("console", on_console)
            yield opened
            assert opened.external == [], "the console reached beyond the mock"
            assert opened.errors == []
        finally:
            context.close()


def _session_token(e2e: E2E) -> str:
    data = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    response = e2e.http.post(f"{e2e.mock.url}/connect/token", data=data, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _list(e2e: E2E, token: str, times: int) -> list[int]:
    headers = {"Authorization": f"Bearer {token}"}
    return [e2e.http.get(f"{e2e.mock.url}{LIST_PATH}", headers=headers, timeout=HTTP_TIMEOUT).status_code for _ in range(times)]


def _seqs(console: Console) -> list[int]:
    return [int(s) for s in console.rows().evaluate_all("rows => rows.map(r => r.dataset.seq)")]


# --------------------------------------------------------------------------- the tester's main flow


def test_console_seed_and_503_rule_then_a_sync_shows_retries_with_one_key(e2e: E2E, console: Console) -> None:
    """Seeded and faulted through the console's forms, a real sync's retried create shows in the filtered journal as
    injected attempts that carry the same Idempotency-Key as the create that finally succeeded."""
    person = "PCONSOLE01"
    e2e.person_ids.add(person)
    console.open()

    console.submit("seed-form", personIds=person)
    expect(console.page.locator(f'tr[data-person-row="{person}"]')).to_contain_text("active")
    assert [p["personId"] for p in e2e.control.people()] == [person]

    console.submit("rule-form", method="POST", path=CREATE_GLOB, status="503", retryAfter="1", times="2")
    rule_row = console.page.locator("#rules-live tr[data-rule]")
    expect(rule_row).to_have_count(1)
    expect(rule_row).to_contain_text("503")
    [rule] = e2e.fault_state()["rules"]
    assert (rule["rule"]["status"], rule["rule"]["retryAfter"], rule["rule"]["times"]) == (503, 1, 2)

    e2e.add_records(record(person))
    e2e.flagsync("sync")
    assert e2e.flagged() == {person}

    console.filter_journal(method="POST", path=CREATE_GLOB)
    assert "method=POST" in console.page.url
    rows = console.rows()
    expect(rows).to_have_count(3)
    statuses = rows.locator("td.status").all_inner_texts()
    assert statuses == ["201", "503", "503"]  # newest first
    keys = rows.locator("td.key").all_inner_texts()
    assert len(set(keys)) == 1 and keys[0].strip()
    expect(rows.first).not_to_have_class(re.compile(r"\binjected\b"))

    console.filter_journal(injected="true")
    injected = console.rows()
    expect(injected).to_have_count(2)
    for index in range(2):
        row = injected.nth(index)
        expect(row).to_have_class(re.compile(r"\binjected\b"))
        expect(row.locator("td").nth(6)).to_have_text(f"injected rule #{rule['id']}")
        expect(row.locator("td.code")).to_have_text("MAINTENANCE")
    assert injected.locator("td.key").all_inner_texts() == keys[:2]

    # The page tells the truth: the same three attempts, one key, in the journal itself.
    creates = [e for e in e2e.journal() if e["method"] == "POST" and e["path"] == f"/api/v1/people/{person}/involvements"]
    assert [(e["status"], e["injectedFault"], e["faultRule"]) for e in creates] == [
        (503, True, rule["id"]),
        (503, True, rule["id"]),
        (201, False, None),
    ]
    assert {e["headers"]["idempotency-key"] for e in creates} == {keys[0].strip()}
    assert _seqs(console) == [e["seq"] for e in reversed(creates[:2])]

    # A key in the journal links to every request that carried it: the two refused attempts and the create.
    with console.page.expect_navigation():
        console.rows().first.locator("td.key a").click()
    expect(console.rows()).to_have_count(3)
    assert _seqs(console) == [e["seq"] for e in reversed(creates)]
    expect(console.page.locator("#journal-filter [name=key]")).to_have_value(keys[0].strip())


# --------------------------------------------------------------------------- paging, spent rules, forms


def test_console_pages_through_the_journal_beyond_the_latest_fifty(e2e: E2E, console: Console) -> None:
    """With 131 requests the console shows the latest 50 and its older/newer links reach every one of them."""
    token = _session_token(e2e)
    assert set(_list(e2e, token, 130)) == {200}
    every = [e["seq"] for e in e2e.journal()]  # seq numbers run on across resets: take them from the journal
    assert len(every) == 131
    newest, oldest = every[-1], every[0]
    console.open()
    expect(console.page.locator("#journal-live .shown")).to_have_text(f"Showing #{newest} to #{every[-50]}: 50 of 131 matching")
    seen = [_seqs(console)]
    while console.page.locator('[data-page="older"]').count():
        with console.page.expect_navigation():
            console.page.locator('[data-page="older"]').first.click()
        seen.append(_seqs(console))
    assert [len(page) for page in seen] == [50, 50, 31]
    assert [seq for page in seen for seq in page] == every[::-1]
    assert seen[-1][-1] == oldest
    with console.page.expect_navigation():
        console.page.locator('[data-page="newer"]').first.click()
    assert _seqs(console) == seen[1]
    with console.page.expect_navigation():
        console.page.locator('[data-page="latest"]').first.click()
    assert _seqs(console) == seen[0]

    console.filter_journal(limit="20", method="GET")  # the filters page too, 20 rows at a time
    expect(console.page.locator("#journal-live .shown")).to_have_text(f"Showing #{newest} to #{every[-20]}: 20 of 130 matching")
    with console.page.expect_navigation():
        console.page.locator('[data-page="older"]').first.click()
    assert _seqs(console) == every[-21:-41:-1]
    assert "method=GET" in console.page.url and "limit=20" in console.page.url


def test_console_shows_a_spent_rule_as_spent_live(e2e: E2E, console: Console) -> None:
    """A rule added in the console that fires its one time turns "spent" on the open page (live refresh), and stays listed."""
    console.open()
    console.submit("rule-form", method="GET", path=LIST_PATH, status="500", times="1")
    row = console.page.locator("#rules-live tr[data-rule]")
    expect(row).to_have_class("active")
    # Typing in the settings form is not wiped out by the refreshes that follow.
    console.page.locator("#settings-form [name=listingDelaySeconds]").fill("2.5")

    token = _session_token(e2e)
    assert _list(e2e, token, 2) == [500, 200]
    expect(row).to_have_class("spent")
    expect(row.locator(".badge")).to_have_text("spent")
    expect(row).to_contain_text("1 (0 left)")
    expect(console.page.locator("#journal-live tr.req.injected")).to_have_count(1)
    assert console.page.locator("#settings-form [name=listingDelaySeconds]").input_value() == "2.5"
    [state] = e2e.fault_state()["rules"]
    assert (state["fired"], state["remaining"], state["spent"]) == (1, 0, True)

    console.page.reload()
    expect(console.page.locator("#rules-live tr[data-rule].spent")).to_have_count(1)


def test_console_fault_forms_set_every_option(e2e: E2E, console: Console) -> None:
    """Each field of the rule and settings forms reaches its own control-plane option, and the buttons remove them again."""
    console.open()
    console.submit(
        "rule-form",
        method="DELETE",
        path="/api/v1/involvements/*",
        status="504",
        code="GATEWAY_TIMEOUT",
        retryAfter="2",
        probability="0.25",
        times="3",
        latencyMs="150",
        afterCommit=True,
        dropConnection=True,
    )
    expect(console.page.locator("#rules-live tr[data-rule]")).to_have_count(1)
    [rule] = e2e.fault_state()["rules"]
    assert rule["rule"] == {
        "method": "DELETE",
        "path": "/api/v1/involvements/*",
        "status": 504,
        "code": "GATEWAY_TIMEOUT",
        "retryAfter": 2,
        "probability": 0.25,
        "times": 3,
        "afterCommit": True,
        "latencyMs": 150,
        "dropConnection": True,
    }
    expect(console.page.locator("#rule-form [name=path]")).to_have_value("")  # the form is ready for the next rule

    settings = console.page.locator("#settings-form")
    for name, value in [
        ("seed", "42"),
        ("rateLimit.perSecond", "7.5"),
        ("rateLimit.burst", "9"),
        ("tokenTtlSeconds", "120"),
        ("listingDelaySeconds", "1.5"),
    ]:
        settings.locator(f"[name='{name}']").fill(value)
    settings.locator("button[type=submit]").click()
    expect(console.page.locator("#notice")).to_have_text("Fault settings applied.")
    state = e2e.fault_state()
    assert (state["seed"], state["rateLimit"], state["tokenTtlSeconds"], state["listingDelaySeconds"]) == (
        42,
        {"perSecond": 7.5, "burst": 9},
        120,
        1.5,
    )
    assert state["rules"][0]["id"] == rule["id"]  # the settings left the rule alone

    console.page.locator("button[data-clear-rate-limit]").click()
    expect(console.page.locator("#notice")).to_have_text("Rate limit removed.")
    assert e2e.fault_state()["rateLimit"] is None
    expect(settings.locator("[name='rateLimit.perSecond']")).to_have_value("")

    console.page.locator(f'button[data-remove-rule="{rule["id"]}"]').click()
    expect(console.page.locator("#rules-live tr[data-rule]")).to_have_count(0)
    console.page.locator("button[data-clear-faults]").click()
    expect(console.page.locator("#notice")).to_have_text("Every fault cleared.")
    assert e2e.fault_state() == {"seed": 11, "rules": [], "rateLimit": None, "tokenTtlSeconds": 3600, "listingDelaySeconds": 0.0}


def test_console_forms_show_the_control_planes_refusal_and_apply_nothing(e2e: E2E, console: Console) -> None:
    """Bad input in each form shows the control plane's own message, marks the field, and changes nothing in the mock."""
    console.open()
    faults_before = e2e.fault_state()

    console.submit("rule-form", path=LIST_PATH, status="700", probability="lots")
    error = console.form_error("rule-form")
    expect(error).to_contain_text("VALIDATION_FAILED: The request body does not match the expected schema.")
    expect(error).to_contain_text("status: Input should be less than or equal to 599.")
    expect(error).to_contain_text("probability: Input should be a valid number")
    expect(console.page.locator("#rule-form [name=status]")).to_have_attribute("aria-invalid", "true")

    settings = console.page.locator("#settings-form")
    settings.locator("[name=tokenTtlSeconds]").fill("60")
    settings.locator("[name='rateLimit.perSecond']").fill("5")
    settings.locator("[name='rateLimit.burst']").fill("0")
    settings.locator("button[type=submit]").click()
    expect(console.form_error("settings-form")).to_contain_text("rateLimit.burst: Input should be greater than or equal to 1.")
    assert e2e.fault_state() == faults_before  # the good token lifetime was not applied either

    console.submit("seed-form", personIds="PGOOD1 bad!id")
    expect(console.form_error("seed-form")).to_contain_text("people.1.personId: String should match pattern")
    assert e2e.control.people() == []

    console.page.locator("#journal-filter [name=status]").fill("teapot")
    with console.page.expect_navigation():
        console.page.locator("#journal-filter button[type=submit]").click()
    expect(console.page.locator("#journal-live .error")).to_have_text(
        "INVALID_QUERY: A query parameter is missing, unknown or out of range. (status)"
    )
    expect(console.page.locator("#journal-filter [name=status]")).to_have_value("teapot")


def test_console_archives_merges_and_changes_involvements_by_hand(e2e: E2E, console: Console) -> None:
    """The console's people and involvement actions change One: archive, merge with a successor, another team's
    involvement added, our flag removed by hand (drift), and a merge without a successor refused."""
    people = ["PHAND1", "PHAND2", "PHAND3"]
    e2e.person_ids.update([*people, "PHANDNEW"])
    console.open()
    console.submit("seed-form", personIds=" ".join(people))
    expect(console.page.locator("#people-live tr[data-person-row]")).to_have_count(3)

    console.page.locator('button[data-person="PHAND1"][data-person-state="archived"]').click()
    expect(console.page.locator('tr[data-person-row="PHAND1"]')).to_contain_text("archived")

    merge_row = console.page.locator('tr[data-person-row="PHAND2"]')
    merge_row.locator("button[data-person-merge]").click()
    expect(console.page.locator("#notice")).to_contain_text("people.0: a merged person needs a successorPersonId")
    merge_row.locator("input[name=successor]").fill("PHANDNEW")
    merge_row.locator("button[data-person-merge]").click()
    expect(console.page.locator('tr[data-person-row="PHAND2"]')).to_contain_text("PHANDNEW")

    rows = console.page.locator("#involvements-live tr[data-involvement]")
    console.submit("involvement-form", personId="PHAND3", serviceTeam="EHS")
    # The form resets once its request is answered: wait for that before filling it again, as a person would
    # (filling it while the first request is in flight keeps its team, EHS, for the second).
    expect(rows).to_have_count(1)
    expect(console.page.locator("#involvement-form [name='serviceTeam']")).not_to_have_value("EHS")
    console.submit("involvement-form", personId="PHAND3")  # ours, as if made by hand in One
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("other team")
    expect(rows.nth(1)).to_contain_text("ours")
    rows.nth(1).locator("button[data-remove-involvement]").click()
    expect(rows.nth(1)).to_have_class("removed")

    state = {p["personId"]: (p["state"], p["successorPersonId"]) for p in e2e.control.people()}
    assert state == {"PHAND1": ("archived", None), "PHAND2": ("merged", "PHANDNEW"), "PHAND3": ("active", None)}
    stored = [(i["serviceTeam"], i["status"]) for i in e2e.involvements()]
    assert stored == [("EHS", "active"), (TEAM, "removed")]


# --------------------------------------------------------------------------- layout


def _offscreen(console: Console) -> list[str]:
    """Every visible element whose right edge is beyond the viewport, described by tag, class and text."""
    found: list[str] = console.page.evaluate(
        """() => Array.from(document.querySelectorAll('body *'))
            .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.right > window.innerWidth + 0.5; })
            .map(e => `${e.tagName.toLowerCase()}.${e.className} ${(e.textContent || '').trim().slice(0, 40)}`)"""
    )
    return found


def _assert_fits(console: Console) -> None:
    assert console.page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    assert _offscreen(console) == []
    for table in ("people", "involvements", "rules", "journal"):
        headers = console.page.locator(f"table.{table} thead th")
        assert headers.count() > 0, table
        for index in range(headers.count()):
            box = headers.nth(index).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, (table, index)


def test_console_fits_1280_pixels_with_long_values(e2e: E2E, console: Console, tmp_path: Path) -> None:
    """After a realistic session (the screenshot), and again with the longest ids, keys, paths and correlation ids the
    contract allows, no column or element of the console leaves a 1280 px window."""
    active = ["P0001234", "P0001235", "P0001236"]
    e2e.seed_people(*active)
    e2e.seed_people("P0002001", state="archived")
    e2e.seed_people("P0002002", state="merged", successor="P0002003")
    e2e.seed_people("P0002004", state="restricted")
    e2e.add_by_hand("P0001234", team="EHS")
    e2e.add_records(*(record(p) for p in [*active, "P0002001", "P0002002"]))
    e2e.faults(
        {
            "seed": 7,
            "rules": [
                {"method": "POST", "path": CREATE_GLOB, "status": 503, "retryAfter": 1, "times": 2},
                {"method": "GET", "path": LIST_PATH, "latencyMs": 20, "times": 1},
                {"method": "DELETE", "path": "/api/v1/involvements/*", "status": 504, "afterCommit": True, "times": 1},
            ],
            "rateLimit": {"perSecond": 25, "burst": 25},
        }
    )
    e2e.flagsync("sync", expect=None)
    assert e2e.flagged() == set(active)
    drifted = next(i["id"] for i in e2e.ours() if i["personId"] == "P0001236")
    e2e.remove_by_hand(drifted)

    console.open()
    console.page.locator("#journal-live tr.req.injected button.toggle").last.click()
    expect(console.page.locator("#journal-live tr.detail:not([hidden])")).to_have_count(1)
    _assert_fits(console)
    shot = tmp_path / "tester-console.png"
    console.page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 50_000
    keep = os.environ.get("CONSOLE_SCREENSHOT")
    if keep:
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        Path(keep).write_bytes(data)

    longest = "P" + "7" * 63
    e2e.seed_people(longest, state="merged", successor="Q" + "8" * 63)
    e2e.add_by_hand(longest, team="LONGTEAMNAME_" + "X" * 19)
    e2e.faults({"rules": [{"path": "/api/v1/" + "very-long-segment/" * 20 + "*", "status": 502, "code": "C" * 64}]})
    token = _session_token(e2e)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "K" * 64, "X-Correlation-ID": "c" * 128}
    answered = requests.post(
        f"{e2e.mock.url}/api/v1/people/{longest}/involvements",
        json={"involvementType": "PIAS_WORKING_WITH_FAMILY"},
        headers=headers,
        timeout=HTTP_TIMEOUT,
    )
    assert answered.status_code == 409 and answered.json()["error"]["code"] == "PERSON_MERGED"
    e2e.http.get(f"{e2e.mock.url}/api/v1/{'very-long-segment/' * 20}x?{'q=' + 'v' * 300}", timeout=HTTP_TIMEOUT)
    console.page.reload()
    console.page.locator("#journal-live tr.req button.toggle").first.click()
    console.page.locator("#journal-live tr.req button.toggle").nth(1).click()
    expect(console.page.locator("#journal-live tr.detail:not([hidden])")).to_have_count(2)
    _assert_fits(console)
