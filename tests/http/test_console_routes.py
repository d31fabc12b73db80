"""The console's server side: /ui/ assets under a strict CSP, GET /v1/whoami and GET /v1/stats."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from saga_journey.http import ui_routes
from saga_journey.http.settings import check_grafana_url
from saga_journey.runtime.errors import InvalidInputError

from .conftest import auth

ADMIN = auth("acme-admin")
READER = auth("acme-reader")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline = ""
        self._inline_tag = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._inline_tag = tag in ("script", "style")

    def handle_endtag(self, tag):
        self._inline_tag = False

    def handle_data(self, data):
        if self._inline_tag:
            self.inline += data.strip()


async def test_console_assets_are_public_under_a_strict_csp(client):
    files = ui_routes.assets()
    assert {"index.html", "app.js", "api.js", "dom.js", "timeline.js", "saga.js", "style.css", "icon.svg"} <= set(files)
    for name, (body, ctype) in files.items():
        resp = await client.get(f"/ui/{name}")  # no credential: the page itself holds no data
        assert resp.status == 200 and resp.content_type == ctype, name
        csp = resp.headers["Content-Security-Policy"]
        assert csp == ui_routes.CSP
        assert "unsafe" not in csp and "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert await resp.read() == body
    index = await client.get("/ui/")
    assert index.status == 200 and await index.read() == files["index.html"][0]
    moved = await client.get("/ui", allow_redirects=False)
    assert moved.status == 308 and moved.headers["Location"] == "/ui/"
    assert (await client.get("/ui/nothing.js")).status == 404


def test_console_markup_and_scripts_never_parse_data_as_html():
    page = _Tags()
    page.feed(ui_routes.assets()["index.html"][0].decode())
    assert page.inline == "", "no inline script or style: the CSP would block it"
    for tag, attrs in page.tags:
        assert not any(name.startswith("on") or name == "style" for name in attrs), (tag, attrs)
    sources = {attrs.get("src") or attrs.get("href") for tag, attrs in page.tags if tag in ("script", "link", "img")}
    assert sources == {"/ui/app.js", "/ui/style.css", "/ui/icon.svg"}  # nothing from another origin
    for name, (body, _) in ui_routes.assets().items():
        if name.endswith(".js"):
            text = body.decode()
            for banned in (".innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                           "setAttribute(\"style\"", "javascript:"):
                assert banned not in text, (name, banned)
            assert "localStorage" not in text  # the token lives only for the browser session
            for imported in re.findall(r'from "\./([^"]+)"', text):
                assert imported in ui_routes.assets(), (name, imported)


async def test_whoami_says_which_repairs_the_roles_allow(client):
    admin = await (await client.get("/v1/whoami", headers=ADMIN)).json()
    assert admin == {"tenant_id": "acme", "user_id": "alice", "roles": ["admin", "read", "write"],
                     "can": {"abort": True, "retry_compensation": True, "skip_compensation": True}}
    reader = await (await client.get("/v1/whoami", headers=READER)).json()
    assert reader["roles"] == ["read"] and not any(reader["can"].values())
    writer = await (await client.get("/v1/whoami", headers=auth("globex-writer"))).json()
    assert writer["can"] == {"abort": True, "retry_compensation": False, "skip_compensation": False}
    assert (await client.get("/v1/whoami")).status == 401
    refused = await client.post("/v1/sagas/x/retry-compensation", json={"reason": "r"}, headers=READER)
    assert refused.status == 403  # what whoami says is what the API enforces


async def _journey(client, retry_attempts: int) -> str:
    resp = await client.post("/v1/journeys", headers=ADMIN, json={
        "journey_type": "order_processing",
        "requirements": {"retry": {"max_attempts": retry_attempts, "initial_delay_s": 0.001, "max_delay_s": 0.001}}})
    assert resp.status == 201
    return (await resp.json())["journey_id"]


async def _saga(client, jid: str, completes: int, fail: bool) -> str:
    resp = await client.post("/v1/sagas", headers=ADMIN, json={"journey_id": jid})
    sid = (await resp.json())["saga_id"]
    for _ in range(completes):
        assert (await client.post(f"/v1/sagas/{sid}/advance", headers=ADMIN,
                                  json={"step_result": {"status": "complete"}})).status == 200
    if fail:
        assert (await client.post(f"/v1/sagas/{sid}/fail", headers=ADMIN, json={"error": "boom"})).status == 200
        final = await (await client.get(f"/v1/sagas/{sid}?wait=30", headers=ADMIN)).json()
        assert final["status"] == "FAILED"
    return sid


async def test_stats_counts_states_parked_and_rollbacks_of_the_last_hour(client, calls):
    empty = await (await client.get("/v1/stats", headers=READER)).json()
    assert empty["by_state"] == {"IN_PROGRESS": 0, "COMPENSATING": 0, "COMPLETED": 0, "FAILED": 0}
    assert empty["rollbacks_last_hour"]["p50_s"] is None and empty["grafana_url"] is None
    jid = await _journey(client, 1)
    await _saga(client, jid, 1, False)  # in progress
    await _saga(client, jid, 4, False)  # completed
    await _saga(client, jid, 0, True)  # failed at its first milestone: nothing rolled back
    for _ in range(3):
        await _saga(client, jid, 2, True)  # rolled back
    calls.fail.add("refund_payment")
    await _saga(client, jid, 3, True)  # parked at process_payment
    st = await (await client.get("/v1/stats", headers=READER)).json()
    assert st["by_state"] == {"IN_PROGRESS": 1, "COMPENSATING": 0, "COMPLETED": 1, "FAILED": 5}
    assert st["total"] == 7 and st["parked"] == 1
    rb = st["rollbacks_last_hour"]
    assert (rb["finished"], rb["parked"], rb["complete"], rb["window_s"]) == (3, 1, True, 3600.0)
    assert 0 <= rb["p50_s"] <= rb["p99_s"] < 60
    other = await (await client.get("/v1/stats", headers=auth("globex-admin"))).json()
    assert other["total"] == 0 and other["parked"] == 0  # another tenant's sagas are not counted


async def test_stats_carry_the_grafana_link(make_client):
    client = await make_client(grafana_url="https://grafana.example/d/sj")
    assert (await (await client.get("/v1/stats", headers=READER)).json())["grafana_url"] == "https://grafana.example/d/sj"


def test_grafana_url_must_be_http():
    assert check_grafana_url("http://g:3000/d/x?orgId=1") == "http://g:3000/d/x?orgId=1"
    for bad in ("javascript:alert(1)", "data:text/html,x", "/relative", "https://a b", ""):
        with pytest.raises(InvalidInputError):
            check_grafana_url(bad)


def test_rollback_figures_and_percentiles():
    assert ui_routes.percentile([], 50) is None
    values = [float(i) for i in range(1, 101)]
    assert ui_routes.percentile(values, 50) == 50.0 and ui_routes.percentile(values, 99) == 99.0
    assert ui_routes.percentile([3.0], 99) == 3.0
    views = [
        {"failure": {"at": 10.0}, "updated_at": 12.5, "compensated_milestones": ["a"], "parked": False},
        {"failure": {"at": 10.0}, "updated_at": 10.5, "compensated_milestones": ["a"], "parked": False},
        {"failure": {"at": 10.0}, "updated_at": 11.0, "compensated_milestones": [], "pending_compensations": ["a"], "parked": True},
        {"failure": {"at": 10.0}, "updated_at": 10.0, "compensated_milestones": [], "pending_compensations": [], "parked": False},
    ]
    assert ui_routes.rollback_figures(views) == {"finished": 2, "parked": 1, "p50_s": 0.5, "p99_s": 2.5}


async def test_openapi_documents_the_console_routes(client):
    doc = await (await client.get("/openapi.json")).json()
    assert doc["paths"]["/v1/whoami"]["get"]["operationId"] == "whoami"
    assert doc["paths"]["/v1/stats"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ConsoleStats"}
    assert {"WhoAmI", "ConsoleStats", "RollbackFigures", "StateCounts"} <= set(doc["components"]["schemas"])
    assert not any(p.startswith("/ui") for p in doc["paths"])  # the page is not part of the API



def test_serve_refuses_a_grafana_url_that_is_not_http(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--grafana-url", "javascript:alert(1)",
                           "--create", "--data-dir", str(tmp_path / "data"), "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "expected an absolute http:// or https:// URL" in proc.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was created
