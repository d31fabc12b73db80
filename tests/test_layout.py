"""Guards for the package layout and the purity of the saga core (DESIGN.md section 3)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runtime", "actors", "persistence", "http", "metrics", "client")
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


# Modules of the LMDB backend: only persistence/ reaches them (the factory, lazily, by URL).
LMDB_BACKEND = {
    "lmdb_store", "lmdb_env", "lmdb_keys", "lmdb_ops", "lmdb_reads", "lmdb_writer", "lmdb_admin",
    "lmdb_backend", "readonly", "verify", "layout", "recent", "retention",
}


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (at any level, also inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_runtime_gateway_and_cli_reach_the_store_only_through_its_ports() -> None:
    offenders = []
    for package in ("runtime", "actors", "http", "metrics", "client"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in _imported_modules(path):
                parts = name.split(".")
                backend = parts[0] == "lmdb" or (
                    parts[:2] == ["saga_journey", "persistence"] and len(parts) > 2 and parts[2] in LMDB_BACKEND
                )
                if backend:
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_nothing_is_patched_into_another_object_after_construction() -> None:
    """The composition root passes what each part needs to its constructor: no assignment into
    another object's attributes (``x.attr = ...`` where x is not self/cls), outside tests."""
    allowed = {  # state changes of an object's own documented, public fields, not wiring
        ("http/app.py", "ready"),  # the gateway stops answering readyz on shutdown
        ("http/events.py", "closing"),  # an event stream is told to end
        ("runtime/cli.py", "help"), ("runtime/cli.py", "default"),  # argparse actions
        ("runtime/cli_sagas.py", "obj"), ("runtime/cli_sagas.py", "__doc__"),  # click
        ("runtime/events.py", "__name__"), ("runtime/cli_render.py", "width"),
        ("runtime/logs.py", "_saga_journey"),  # marks the handler it installed
        ("persistence/lmdb_writer.py", "__cause__"), ("persistence/retention.py", "more"),
            ("persistence/retention.py", "feed_more"),  # a PruneResult is filled in by the writer
            ("persistence/records.py", "packer"),  # a thread-local cache of one Packer per thread
        ("metrics/workload.py", "seconds"), ("actors/loop_actor.py", "draining"),
    }
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                for target in targets:
                    for t in (target.elts if isinstance(target, ast.Tuple) else [target]):
                        if (isinstance(t, ast.Attribute) and not (isinstance(t.value, ast.Name)
                                and t.value.id in ("self", "cls")) and (rel, t.attr) not in allowed):
                            found.append(f"{rel}:{t.lineno} {ast.unparse(t)}")
    assert found == [], "\n".join(found)
