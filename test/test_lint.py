"""Linters as tests (the ros2/demos habit): ruff over everything, mypy over the package (nodes included)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_check() -> None:
    ruff = shutil.which("ruff")
    assert ruff, "ruff is in requirements-test.txt; scripts/setup.sh installs it"
    r = _run([ruff, "check", "cosmos_ros", "test", "launch"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format() -> None:
    ruff = shutil.which("ruff")
    assert ruff
    r = _run([ruff, "format", "--check", "cosmos_ros", "test", "launch"])
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_mypy_core() -> None:
    """The package type-checks, the rclpy node modules included (see pyproject.toml)."""
    r = _run([sys.executable, "-m", "mypy", "cosmos_ros"])
    assert r.returncode == 0, r.stdout + r.stderr
