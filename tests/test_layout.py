"""Guards for the package layout and the purity of the saga core (DESIGN.md section 3)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PURE_MODULES = ["model.py", "machine.py", "codec.py", "journeys.py", "errors.py", "values.py"]
FORBIDDEN = {
    "pykka", "lmdb", "aiohttp", "asyncio", "threading", "time", "random", "socket",
    "os", "subprocess", "concurrent", "msgpack", "prometheus_client", "datetime", "uuid",
}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_pure_core_imports_no_threads_io_or_clock() -> None:
    for name in PURE_MODULES:
        bad = _imported_roots(ROOT / "runtime" / name) & FORBIDDEN
        assert not bad, f"runtime/{name} imports {sorted(bad)}; the core must stay pure"


def test_pure_core_relative_imports_stay_inside_the_core() -> None:
    allowed = {m[:-3] for m in PURE_MODULES}
    for name in PURE_MODULES:
        tree = ast.parse((ROOT / "runtime" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.module in allowed, f"runtime/{name} imports .{node.module}"


def test_http_folder_is_a_namespace_package() -> None:
    assert (ROOT / "http").is_dir()
    assert not (ROOT / "http" / "__init__.py").exists(), "http/__init__.py would shadow stdlib http"


def test_import_http_from_repo_root_is_the_standard_library() -> None:
    code = "import http, http.client, sys; print(http.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out.startswith(os.path.dirname(os.__file__)), out


def test_public_entry_point() -> None:
    from saga_journey.runtime import SagaOrchestrator

    assert SagaOrchestrator.__module__ == "saga_journey.runtime.orchestrator"


def test_gateway_imports_next_to_the_standard_library_http() -> None:
    code = "import http, aiohttp, saga_journey.http.app; print(http.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "site-packages" not in out and str(ROOT / "http") not in out, out
