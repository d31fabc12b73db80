"""The /docs API reference page: served without a credential under a strict CSP, its assets
shipped in the wheel, and (where Debian's chromium is installed) rendered by a real browser."""

from __future__ import annotations

import asyncio
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser

import pytest

from saga_journey.http import docs, ui_routes

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = {"/docs": "index.html", "/docs/app.js": "app.js", "/docs/style.css": "style.css"}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_text += data.strip()


async def test_docs_page_is_public_with_a_strict_csp(client):
    for path, name in FILES.items():
        resp = await client.get(path)  # no Authorization header; API keys are configured
        assert resp.status == 200, path
        assert resp.content_type == docs.ASSETS[name] and resp.charset == "utf-8"
        csp = resp.headers["Content-Security-Policy"]
        assert csp == docs.CSP and "unsafe" not in csp and "default-src 'none'" in csp
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert (await resp.read()) == (docs.ASSET_DIR / name).read_bytes()
    page = _Page()
    page.feed(await (await client.get("/docs")).text())
    assert page.script_text == "", "no inline script: the CSP would block it"
    for tag, attrs in page.tags:
        assert not any(name.startswith("on") or name == "style" for name in attrs), (tag, attrs)
    local = {attrs.get("src") or attrs.get("href") for tag, attrs in page.tags if tag in ("script", "link")}
    assert local == {"/docs/app.js", "/docs/style.css"}  # nothing from another origin
    js = (await (await client.get("/docs/app.js")).text())
    assert 'fetch("/openapi.json"' in js and ".innerHTML" not in js and "eval(" not in js
    assert (await client.head("/docs")).status == 200


def test_docs_script_parses():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    subprocess.run([node, "--check", str(docs.ASSET_DIR / "app.js")], check=True, timeout=60)


def test_wheel_ships_the_docs_assets(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("runtime", "actors", "persistence", "http", "metrics", "client"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path / "dist"), str(src)],
        check=True, timeout=300, capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("saga_journey-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in docs.ASSETS:
        assert f"saga_journey/http/static/docs/{asset}" in names
    for asset in ui_routes.assets():  # the console at /ui/
        assert f"saga_journey/http/static/ui/{asset}" in names
    assert "saga_journey/http/docs.py" in names and "saga_journey/http/__init__.py" not in names


async def test_browser_renders_every_operation_and_schema(client, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (optional: apt-get install chromium)")
    doc = await (await client.get("/openapi.json")).json()
    proc = await asyncio.create_subprocess_exec(
        chromium, "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
        f"--user-data-dir={tmp_path / 'chromium'}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000", "--dump-dom", str(client.make_url("/docs")),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    dom, log = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    assert proc.returncode == 0, log[-3000:]
    assert "Refused to" not in log, "a Content-Security-Policy violation"  # blocked script/style/fetch
    operations = [op["operationId"] for methods in doc["paths"].values() for op in methods.values()]
    assert f'data-rendered="{len(operations)}"' in dom, dom[:3000]
    ids = set(re.findall(r'\bid="([^"]+)"', dom))
    assert {f"op-{o}" for o in operations} <= ids
    assert {f"schema-{s}" for s in doc["components"]["schemas"]} <= ids
    links = set(re.findall(r'href="#([^"]+)"', dom))
    assert links and links <= ids, links - ids  # every $ref link lands on a rendered schema
