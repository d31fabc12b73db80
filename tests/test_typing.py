"""mypy over every package, as ``saga_journey.*`` (configured in pyproject.toml): strict on the
pure core, normal elsewhere. The folders sit at the repo root and are mapped under one import
package by setuptools, which mypy cannot follow; a symlinked tree gives it the same layout."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ("model", "machine", "codec", "journeys", "errors", "values")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_pure_core_is_checked_strictly() -> None:
    overrides = _pyproject()["tool"]["mypy"]["overrides"]
    strict = next(o for o in overrides if o.get("disallow_untyped_defs"))
    assert sorted(strict["module"]) == sorted(f"saga_journey.runtime.{m}" for m in CORE)
    assert strict["warn_return_any"] and strict["disallow_any_generics"] and strict["disallow_untyped_calls"]


def test_mypy_finds_no_errors(tmp_path: Path) -> None:
    package_dir = _pyproject()["tool"]["setuptools"]["package-dir"]
    tree = tmp_path / "src" / "saga_journey"
    tree.mkdir(parents=True)
    for package, folder in package_dir.items():
        (tree / package.removeprefix("saga_journey.")).symlink_to(ROOT / folder, target_is_directory=True)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), "-p", "saga_journey"],
        cwd=tmp_path / "src", capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    assert "Success: no issues found" in proc.stdout
