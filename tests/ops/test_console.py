"""The browser console at /ui/, in Debian's headless chromium (Selenium), against a real
``saga-journey serve`` subprocess with real sagas and webhook compensation handlers.

Every wait is on a DOM condition (WebDriverWait); the screenshots in docs/console-*.png are
written by this run.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import chromium, full_page_screenshot, missing
from .conftest import ADMIN, ORDER, READER, Gateway, design, make_saga, running_gateway

DOCS = Path(__file__).resolve().parents[2] / "docs"
GRAFANA = "https://grafana.example.test/d/saga-journey"
WAIT_S = 60
HOSTILE = ['<script>window.__pwned = 1</script>', '"><img src=x onerror="window.__pwned = 2">',
           "<svg onload=\"window.__pwned = 3\"></svg>", "javascript:window.__pwned=4"]


def _require_browser() -> None:
    why = missing()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}; CI=true, so a missing browser is an error, not a skip")
    pytest.skip(why)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A server of this module's own, with a Grafana link configured through its env variable."""
    _require_browser()
    before = os.environ.get("SAGA_JOURNEY_GRAFANA_URL")
    os.environ["SAGA_JOURNEY_GRAFANA_URL"] = GRAFANA
    try:
        with running_gateway(tmp_path_factory.mktemp("console")) as gateway:
            yield gateway
    finally:
        if before is None:
            os.environ.pop("SAGA_JOURNEY_GRAFANA_URL", None)
        else:
            os.environ["SAGA_JOURNEY_GRAFANA_URL"] = before


@pytest.fixture(scope="module")
def journey(gw: Gateway) -> dict[str, Any]:
    return design(gw)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    with chromium() as driver:
        yield driver


def wait(driver: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(condition, what)


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def sign_in(driver: Any, gw: Gateway, token: str) -> None:
    """Open the console; sign out whoever is signed in; sign in with ``token`` through the form."""
    from selenium.webdriver.common.by import By

    driver.get(gw.url + "/ui/#/overview")
    wait(driver, lambda d: js(d, "return !!(document.getElementById('signin') || document.getElementById('sign-out'))"), "the console loaded")
    if js(driver, "return !!document.getElementById('sign-out')"):
        driver.find_element(By.ID, "sign-out").click()
    field = wait(driver, lambda d: d.find_element(By.ID, "token"), "the sign-in form")
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()
    wait(driver, lambda d: js(d, "return !!document.getElementById('whoami')"), "signed in")


def go(driver: Any, route: str) -> None:
    """Navigate inside the console (a hash route: no reload, the token stays in sessionStorage)."""
    js(driver, "location.hash = arguments[0]", route)


def rows(driver: Any) -> list[dict[str, str]]:
    return js(driver, "return [...document.querySelectorAll('#saga-table tbody tr')].map(r => ({...r.dataset}))")


def comp_marks(driver: Any) -> list[dict[str, str]]:
    return js(driver, "return [...document.querySelectorAll('#timeline g.mark.lane-compensation')].map(g => ({...g.dataset}))")


def saga_page(driver: Any, saga_id: str, *, entries: int | None = None) -> None:
    go(driver, f"#/saga/{saga_id}")
    wait(driver, lambda d: js(d, "const c = document.getElementById('status-card'); const t = document.getElementById('timeline');"
                                 "return !!c && !!t && t.dataset.entries > 0 && document.querySelector('.live').dataset.state === 'live'"
                                 " && document.querySelector('h1 .mono').textContent === arguments[0]", saga_id), f"saga {saga_id} shown")
    if entries is not None:
        wait(driver, lambda d: js(d, "return document.getElementById('timeline').dataset.entries") == str(entries), f"{entries} entries")


def choose(driver: Any, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


def list_shows(driver: Any, predicate: Any, what: str) -> list[dict[str, str]]:
    """Wait until the saga table (or its "no saga" note) satisfies ``predicate(rows)``."""
    def ready(d: Any) -> Any:
        if js(d, "return !!document.getElementById('no-sagas')"):
            return predicate([]) and [{}]
        found = rows(d)
        return bool(found) and predicate(found) and found
    result = wait(driver, ready, what)
    return [r for r in result if r]


def custom_journey(gw: Gateway, journey_type: str) -> str:
    """A journey of its own type whose milestones have nothing to undo."""
    with gw.client() as c:
        return c.design_saga_journey(journey_type, {"milestones": ["collect", "deliver"]})["journey_id"]


def test_list_filters_counts_and_paging(gw: Gateway, journey: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    jid = journey["journey_id"]
    with gw.client() as c:
        made = {o: make_saga(c, jid, f"u-{o}", o)["saga_id"] for o in ("in_progress", "completed", "compensated", "parked")}
        kind = "list_" + uuid.uuid4().hex[:8]
        other = custom_journey(gw, kind)
        many = [c.execute_saga_journey(other, "u-many", {})["saga_id"] for _ in range(30)]
    sign_in(browser, gw, ADMIN)
    go(browser, "#/sagas")
    shown = list_shows(browser, lambda r: len(r) == 25, "the first page (25 sagas)")
    assert js(browser, "return document.getElementById('page-next').disabled") is False
    full_page_screenshot(browser, str(DOCS / "console-sagas.png"))

    choose(browser, "f-status", "COMPLETED")
    shown = list_shows(browser, lambda r: all(x["status"] == "COMPLETED" for x in r) and any(x["sagaId"] == made["completed"] for x in r),
                       "only COMPLETED sagas")
    assert not {made["parked"], made["in_progress"]} & {x["sagaId"] for x in shown}
    assert "status=COMPLETED" in browser.current_url  # the filters are in the route: linkable

    choose(browser, "f-status", "")
    choose(browser, "f-parked", "true")
    shown = list_shows(browser, lambda r: all(x["parked"] == "true" for x in r) and any(x["sagaId"] == made["parked"] for x in r),
                       "only parked sagas")
    assert made["compensated"] not in {x["sagaId"] for x in shown}

    choose(browser, "f-parked", "")
    wait(browser, lambda d: js(d, "return [...document.querySelectorAll('#f-journey-type option')].some(o => o.value === arguments[0])", kind),
         "the journey types offered")
    choose(browser, "f-journey-type", kind)
    page1 = list_shows(browser, lambda r: len(r) == 25 and all(x["sagaId"] in many for x in r), f"only {kind} sagas")
    browser.find_element(By.ID, "page-next").click()
    page2 = list_shows(browser, lambda r: len(r) == 5 and all(x["sagaId"] in many for x in r), "the second page (5 sagas)")
    assert {x["sagaId"] for x in page1} | {x["sagaId"] for x in page2} == set(many)  # every saga once, none twice
    assert js(browser, "return document.getElementById('page-next').disabled") is True
    browser.find_element(By.ID, "page-prev").click()
    assert {x["sagaId"] for x in list_shows(browser, lambda r: len(r) == 25, "back to page 1")} == {x["sagaId"] for x in page1}

    choose(browser, "f-age", "gt1h")  # nothing here is an hour old
    list_shows(browser, lambda r: r == [], "no saga older than an hour")
    choose(browser, "f-age", "lt1h")
    list_shows(browser, lambda r: len(r) == 25, "every saga was updated in the last hour")

    with gw.client() as c:  # live: a saga that changes elsewhere is shown without a reload
        c.advance_saga_step(many[0], step_result={"status": "complete", "milestone_id": "collect"})
        c.advance_saga_step(many[0], step_result={"status": "complete", "milestone_id": "deliver"})
    choose(browser, "f-age", "")
    choose(browser, "f-status", "COMPLETED")
    list_shows(browser, lambda r: any(x["sagaId"] == many[0] for x in r), "the saga completed elsewhere")
    with gw.client() as c:
        c.advance_saga_step(many[1], step_result={"status": "complete", "milestone_id": "collect"})
        c.advance_saga_step(many[1], step_result={"status": "complete", "milestone_id": "deliver"})
    list_shows(browser, lambda r: any(x["sagaId"] == many[1] for x in r), "the list updated live")
    counts = js(browser, "return Object.fromEntries([...document.querySelectorAll('#counts .count')].map(a => [a.dataset.status, a.textContent]))")
    with gw.client(READER) as c:
        assert len(c.list_sagas(status="COMPLETED", limit=1000)["sagas"]) == int(counts["COMPLETED"].split()[-1])


def test_failed_saga_timeline_shows_compensations_in_reverse_order(gw: Gateway, journey: dict[str, Any], browser: Any) -> None:
    with gw.client() as c:
        saga = c.execute_saga_journey(journey["journey_id"], "u-rollback", {"order_id": "o-77", "lines": 3})
        sid = saga["saga_id"]
        for milestone, _ in ORDER[:3]:
            c.advance_saga_step(sid, step_result={"status": "complete", "milestone_id": milestone, "ref": f"{milestone}-ok"})
        c.advance_saga_step(sid, step_result={"status": "failed", "milestone_id": "ship_product", "error": "carrier refused"})
        done = c.wait_for_saga(sid, timeout=60)
    assert done["compensation_status"] == "succeeded"
    sign_in(browser, gw, ADMIN)
    saga_page(browser, sid, entries=8)
    marks = comp_marks(browser)
    assert [m["milestone"] for m in marks] == ["reserve_inventory", "process_payment", "create_order"]
    assert {m["kind"] for m in marks} == {"compensation_succeeded"}
    xs = js(browser, "return [...document.querySelectorAll('#timeline g.mark.lane-compensation circle')].map(c => +c.getAttribute('cx'))")
    assert xs == sorted(xs) and len(set(xs)) == 3  # drawn left to right in that order
    forward = js(browser, "return [...document.querySelectorAll('#timeline g.mark.lane-forward')].map(g => g.dataset.kind + ':' + g.dataset.milestone)")
    assert forward == ["saga_started:", "milestone_completed:create_order", "milestone_completed:process_payment",
                       "milestone_completed:reserve_inventory", "milestone_failed:ship_product"]
    kinds = js(browser, "return [...document.querySelectorAll('#history-table tbody tr')].map(r => r.dataset.kind)")
    assert kinds[-3:] == ["compensation_succeeded"] * 3 and len(kinds) == 8
    text = js(browser, "return document.getElementById('status-card').textContent")
    assert "FAILED (rolled back)" in text and "carrier refused" in text
    assert json.loads(js(browser, "return document.getElementById('context').textContent")) == {"order_id": "o-77", "lines": 3}
    assert "reserve_inventory-ok" in js(browser, "return document.getElementById('results').textContent")
    full_page_screenshot(browser, str(DOCS / "console-compensated.png"))


def _act(driver: Any, button: str, reason: str) -> None:
    from selenium.webdriver.common.by import By

    wait(driver, lambda d: d.find_element(By.ID, button), f"the {button} button").click()
    wait(driver, lambda d: js(d, "return document.getElementById('reason-dialog').open"), "the reason dialog")
    driver.find_element(By.ID, "reason-ok").click()  # an empty reason is refused in the dialog
    wait(driver, lambda d: js(d, "return document.getElementById('reason-error').textContent") == "A reason is required.", "the empty reason refused")
    driver.find_element(By.ID, "reason-text").send_keys(reason)
    driver.find_element(By.ID, "reason-ok").click()
    wait(driver, lambda d: not js(d, "return document.getElementById('reason-dialog').open"), "the dialog closed")


def test_parked_saga_repaired_from_the_page_updates_live(gw: Gateway, journey: dict[str, Any], browser: Any) -> None:
    with gw.client() as c:
        parked = make_saga(c, journey["journey_id"], "u-parked", "parked")["saga_id"]
        skipped = make_saga(c, journey["journey_id"], "u-skip", "parked")["saga_id"]
        running = make_saga(c, journey["journey_id"], "u-abort", "in_progress")["saga_id"]
    sign_in(browser, gw, ADMIN)
    saga_page(browser, parked, entries=8)
    kinds = [m["kind"] for m in comp_marks(browser)]
    assert kinds == ["compensation_succeeded", "compensation_attempt_failed", "compensation_exhausted"]
    assert js(browser, "return document.querySelectorAll('#timeline g.backoff').length") == 1  # the wait between the attempts
    assert js(browser, "return document.getElementById('status-card').dataset.parked") == "true"
    full_page_screenshot(browser, str(DOCS / "console-parked.png"))

    js(browser, "window.__same_page = 'yes'")  # gone if the page were reloaded
    gw.hooks.fixed.add(parked)
    _act(browser, "action-retry", "ledger is back (INC-42)")
    wait(browser, lambda d: js(d, "const c = document.getElementById('status-card'); return c.dataset.status === 'FAILED' && c.dataset.parked === 'false'"),
         "the rollback finished")
    marks = comp_marks(browser)
    assert [(m["kind"], m["milestone"]) for m in marks[3:]] == [
        ("compensation_retried", "process_payment"), ("compensation_succeeded", "process_payment"),
        ("compensation_succeeded", "create_order")]
    assert "retried by ops" in js(browser, "return document.querySelector('#timeline g[data-kind=compensation_retried]').textContent")
    assert "ledger is back (INC-42)" in js(browser, "return document.getElementById('history-table').textContent")
    assert js(browser, "return window.__same_page") == "yes"
    assert js(browser, "return document.getElementById('actions').children.length") == 0  # nothing left to repair
    with gw.client() as c:
        assert c.get_saga_status(parked)["compensation_status"] == "succeeded"

    saga_page(browser, skipped, entries=8)
    _act(browser, "action-skip", "refunded by hand, ticket 4711")
    wait(browser, lambda d: js(d, "return document.getElementById('status-card').dataset.parked") == "false"
         and js(d, "return !!document.querySelector('#timeline g[data-kind=compensation_skipped]')"), "the skip on the timeline")
    label = js(browser, "return document.querySelector('#timeline g[data-kind=compensation_skipped]').textContent")
    assert "skipped by ops" in label and "refunded by hand" in label
    with gw.client() as c:
        assert c.wait_for_saga(skipped, timeout=60)["manually_compensated"] == ["process_payment"]

    saga_page(browser, running, entries=2)
    _act(browser, "action-abort", "customer cancelled")
    wait(browser, lambda d: js(d, "return document.getElementById('status-card').dataset.status") == "FAILED", "the abort's rollback")
    assert [m["milestone"] for m in comp_marks(browser)] == ["create_order"]
    assert js(browser, "return window.__same_page") == "yes"


def test_hostile_strings_render_as_text_and_run_nothing(gw: Gateway, journey: dict[str, Any], browser: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    context = {"note": HOSTILE[0], "name": HOSTILE[1], "nested": {"svg": HOSTILE[2], "href": HOSTILE[3]}}
    with gw.client() as c:
        sid = c.execute_saga_journey(journey["journey_id"], "u-hostile", context)["saga_id"]
        c.advance_saga_step(sid, step_result={"status": "complete", "milestone_id": "create_order", "echo": HOSTILE[1]})
        c.advance_saga_step(sid, step_result={"status": "failed", "milestone_id": "process_payment",
                                              "error": HOSTILE[1] + HOSTILE[0]})
        c.wait_for_saga(sid, timeout=60)
    sign_in(browser, gw, ADMIN)
    browser.get_log("browser")  # drop what came before
    saga_page(browser, sid, entries=4)
    pre = browser.find_element(By.ID, "context")
    assert json.loads(pre.text) == context and pre.is_displayed()  # visible, as text
    for s in HOSTILE:
        assert json.dumps(s) in pre.text  # as JSON text: quotes escaped, markup shown literally
    assert HOSTILE[1] + HOSTILE[0] in browser.find_element(By.ID, "status-card").text
    assert json.dumps(HOSTILE[1]) in browser.find_element(By.ID, "results").text
    assert HOSTILE[1] + HOSTILE[0] in browser.find_element(By.ID, "history-table").text
    assert js(browser, "return window.__pwned") is None
    assert js(browser, "return [...document.images].map(i => i.getAttribute('src'))") == ["/ui/icon.svg"]
    assert js(browser, "return [...document.scripts].map(s => s.getAttribute('src'))") == ["/ui/app.js"]
    assert js(browser, "return document.querySelectorAll('main svg:not(.timeline), main iframe, main [onerror], main [onload]').length") == 0
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    logs = [e["message"] for e in browser.get_log("browser")]
    assert not [m for m in logs if "Content Security Policy" in m or "Refused to" in m], logs


def test_read_only_token_sees_no_repair_buttons_and_the_api_refuses(gw: Gateway, journey: dict[str, Any], browser: Any) -> None:
    with gw.client() as c:
        parked = make_saga(c, journey["journey_id"], "u-ro", "parked")["saga_id"]
        running = make_saga(c, journey["journey_id"], "u-ro2", "in_progress")["saga_id"]
    sign_in(browser, gw, READER)
    assert "read-only" in js(browser, "return document.getElementById('whoami').textContent")
    for sid in (parked, running):
        saga_page(browser, sid)
        assert js(browser, "return document.querySelectorAll('#actions button').length") == 0
        assert js(browser, "return document.querySelectorAll('main button[id^=action-]').length") == 0
    # The same token, from the page: the gateway refuses the repair.
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', headers: {'Content-Type': 'application/json', Authorization: 'Bearer ' +"
        " sessionStorage.getItem('saga-journey.console.token')}, body: JSON.stringify({reason: 'try'})}).then(r => done(r.status));",
        f"/v1/sagas/{parked}/retry-compensation")
    assert status == 403
    with gw.client() as c:
        assert c.get_saga_status(parked)["parked"] is True


def test_overview_figures_and_grafana_link(gw: Gateway, journey: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, gw, ADMIN)
    go(browser, "#/overview")
    wait(browser, lambda d: js(d, "return !!document.getElementById('count-parked')"), "the overview")
    with gw.client() as c:
        make_saga(c, journey["journey_id"], "u-ov", "compensated")
    with gw.client(READER) as c:
        sagas = c.list_sagas(limit=1000)["sagas"]
    want = {s: sum(1 for v in sagas if v["status"] == s) for s in ("IN_PROGRESS", "COMPENSATING", "COMPLETED", "FAILED")}
    parked = sum(1 for v in sagas if v["parked"])
    shown = "return Object.fromEntries([...document.querySelectorAll('#overview .value')].map(e => [e.id, e.textContent]))"
    want_shown = {**{f"count-{s}": str(n) for s, n in want.items()}, "count-parked": str(parked)}
    wait(browser, lambda d: want_shown.items() <= js(d, shown).items(), "the counts, updated live")
    assert int(browser.find_element(By.ID, "rollbacks-finished").text) >= 1
    assert browser.find_element(By.ID, "rollbacks-p50").text.endswith(("ms", " s"))
    assert browser.find_element(By.ID, "grafana").get_attribute("href") == GRAFANA
    full_page_screenshot(browser, str(DOCS / "console-overview.png"))


def test_journeys_page_shows_versions_milestones_handlers_and_policies(gw: Gateway, journey: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    with gw.client() as c:
        jid = "console-journey-" + uuid.uuid4().hex[:6]
        c.design_saga_journey("order_processing", None, journey_id=jid)
        c.design_saga_journey("order_processing", {"retry": {"max_attempts": 7, "initial_delay_s": 0.5}}, journey_id=jid)
    sign_in(browser, gw, ADMIN)
    go(browser, "#/journeys")
    table = f"table.milestones[data-journey='{jid}']"
    wait(browser, lambda d: js(d, "return document.querySelector(arguments[0])?.dataset.version", table) == "2", "version 2")
    text = browser.find_element(By.CSS_SELECTOR, table).text
    assert "refund_payment" in text and "7 attempt(s)" in text
    choose(browser, f"v-{jid}", "1")
    wait(browser, lambda d: js(d, "return document.querySelector(arguments[0])?.dataset.version", table) == "1", "version 1")
    assert "5 attempt(s)" in browser.find_element(By.CSS_SELECTOR, table).text


def test_phone_width_keyboard_and_no_csp_violations(gw: Gateway, journey: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with gw.client() as c:
        sid = make_saga(c, journey["journey_id"], "u-phone", "parked")["saga_id"]
    sign_in(browser, gw, ADMIN)
    browser.get_log("browser")
    browser.set_window_size(390, 844)
    try:
        saga_page(browser, sid, entries=8)
        # Nothing but the timeline and tables (which scroll inside their box) is wider than the screen.
        assert js(browser, "return document.documentElement.scrollWidth <= window.innerWidth + 1")
        # Keyboard: from the top, Tab reaches the repair buttons, and Enter opens the dialog.
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        for _ in range(30):
            if js(browser, "return document.activeElement.id") == "action-retry":
                break
            browser.switch_to.active_element.send_keys(Keys.TAB)
        assert js(browser, "return document.activeElement.tagName + '#' + document.activeElement.id") == "BUTTON#action-retry"
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        wait(browser, lambda d: js(d, "return document.getElementById('reason-dialog').open && document.activeElement.id === 'reason-text'"),
             "the dialog, focused on its reason")
        browser.switch_to.active_element.send_keys(Keys.ESCAPE)
        wait(browser, lambda d: not js(d, "return document.getElementById('reason-dialog').open"), "Escape closed it")
        full_page_screenshot(browser, str(DOCS / "console-phone.png"), width=390)
    finally:
        browser.set_window_size(1280, 900)
    logs = [e["message"] for e in browser.get_log("browser")]
    assert not [m for m in logs if "Content Security Policy" in m or "Refused to" in m], logs
