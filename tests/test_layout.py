"""Guards for the package layout and the purity of the saga core (DESIGN.md section 3)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runtime", "actors", "persistence", "http", "metrics")
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


def _package_modules() -> list[str]:
    """Every module of the five mapped folders, as ``saga_journey.<folder>.<module>``."""
    names = []
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(("saga_journey", *parts)))
    return names


def _import_alone(module: str) -> tuple[str, int, str]:
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    lines = proc.stderr.strip().splitlines()
    return module, proc.returncode, lines[-1] if lines else ""


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """No import cycle: each module is the very first import of its own interpreter (DESIGN.md 3)."""
    modules = _package_modules()
    assert "saga_journey.actors" in modules and "saga_journey.http.server" in modules
    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) * 2)) as pool:
        results = list(pool.map(_import_alone, modules))
    failed = {module: error for module, rc, error in results if rc != 0}
    assert not failed, failed


def test_lazy_re_exports_resolve() -> None:
    import importlib

    for folder in ("runtime", "actors", "persistence", "metrics"):
        package = importlib.import_module(f"saga_journey.{folder}")
        for name in package.__all__:
            getattr(package, name)  # AttributeError if the table names a wrong module
            assert name in dir(package)
