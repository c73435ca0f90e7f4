"""The tree stays ruff-clean: CI fails on a lint finding just as on a failing test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_reports_nothing() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the `test` extra)")
    result = subprocess.run(
        [ruff, "check", "--quiet", str(ROOT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes_on_paxdb_and_the_shell(tmp_path: Path) -> None:
    if shutil.which("mypy") is None:
        pytest.skip("mypy is not installed (it comes with the `test` extra)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path),
            "paxdb",
            "shell/paxdb_shell",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_imports_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import paxdb, paxdb.cli; print(paxdb.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
