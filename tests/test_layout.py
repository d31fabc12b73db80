"""http/ must stay a namespace package so it never shadows the standard library's http."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_http_folder_has_no_init():
    assert not (ROOT / "http" / "__init__.py").exists()


def test_import_http_from_root_is_stdlib():
    out = subprocess.run(
        [sys.executable, "-c", "import http, aiohttp, saga_journey.http.app; print(http.__file__)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    assert "site-packages" not in out and str(ROOT / "http") not in out, out
