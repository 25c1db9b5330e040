"""Issue 16, install half: the node role's requirements install on Python 3.10 (Humble, JetPack 6 on Jetson
Orin), the package installs there with pip, and the pure-core tier (`-m fast`) passes against that install.

What this cannot show here: rclpy on 3.10. The ROS 2 wheels this machine has (requirements-ros-wheels.txt,
Kilted) are cp311/cp312 only, so the nodes' ROS half is not run on 3.10; on a Humble machine `colcon test`
runs it with the distro's Python 3.10.

Slow on the first run: it creates ~/.cache/cosmos_ros/venv-3.10-node and installs requirements-node.txt and
requirements-test.txt into it from the package index (about a minute, network needed); later runs reuse it
while those files are unchanged and take about half a minute.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_packaging import _copy_sources  # noqa: E402

pytestmark = pytest.mark.slow

VENV = Path(os.environ.get("COSMOS_ROS_VENV310", Path.home() / ".cache" / "cosmos_ros" / "venv-3.10-node"))


def _python310() -> str | None:
    candidates = [os.environ.get("COSMOS_ROS_PYTHON310", ""), shutil.which("python3.10") or ""]
    candidates += sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / "3.10*" / "bin" / "python3.10")))
    for c in candidates:
        if (
            c
            and subprocess.run([c, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"]).returncode
            == 0
        ):
            return c
    return None


def _pin(requirements: str, name: str) -> str:
    """A pin as another requirement file has it (pytest: the pip set-up's; setuptools: the dev set's)."""
    lines = (REPO / requirements).read_text().splitlines()
    return next(line.strip() for line in lines if line.startswith(name + "=="))


def _extra_pins() -> list[str]:
    # setuptools: the build backend for `pip install --no-build-isolation .` (3.10's venv has 65.5, which
    # cannot build a wheel without the `wheel` package).
    return [_pin("requirements-ros-wheels.txt", "pytest"), _pin("requirements.txt", "setuptools")]


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH (the 3.11 install space and venv), so only the 3.10 venv's packages are seen."""
    drop = {"PYTHONPATH", "PYTHONSAFEPATH", "VIRTUAL_ENV", "COSMOS_ROS_REQUIRE_INSTALL", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(cmd: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**_clean_env(), **kw.pop("env", {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env, **kw)


@pytest.fixture(scope="module")
def venv310() -> Path:
    py = _python310()
    if py is None:
        pytest.skip(
            "no CPython 3.10 found (python3.10 on PATH, ~/.pyenv/versions/3.10*, or COSMOS_ROS_PYTHON310)"
        )
    roles = [(REPO / f).read_text() for f in ("requirements-node.txt", "requirements-test.txt")]
    want = "\n".join([py, *_extra_pins(), *roles])
    stamp = VENV / ".cosmos_ros_requirements"
    if not (stamp.exists() and stamp.read_text() == want):
        shutil.rmtree(VENV, ignore_errors=True)
        r = _run([py, "-m", "venv", str(VENV)], timeout=300)
        assert r.returncode == 0, r.stderr
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        roles = ["-r", str(REPO / "requirements-node.txt"), "-r", str(REPO / "requirements-test.txt")]
        r = _run([*pip, *roles, *_extra_pins()], timeout=1200)
        assert r.returncode == 0, (
            "the node and test roles' requirements did not install on Python 3.10 (pip needs the package "
            f"index; its own words follow):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        )
        stamp.write_text(want)
    return VENV


def test_node_requirements_resolve_and_exclude_ros_and_the_model(venv310: Path) -> None:
    py = str(venv310 / "bin" / "python")
    r = _run(
        [py, "-c", "import numpy, yaml, cv2, rosbags, hypothesis; print(numpy.__version__)"], timeout=120
    )
    assert r.returncode == 0 and r.stdout.strip() == "2.2.6", r.stdout + r.stderr
    for absent in ("rclpy", "torch", "diffusers", "transformers"):
        r = _run([py, "-c", f"import {absent}"], timeout=60)
        assert r.returncode != 0, f"{absent} is importable in the 3.10 node environment"


def test_pure_core_tier_passes_on_python310_against_a_pip_install(venv310: Path, tmp_path: Path) -> None:
    py = str(venv310 / "bin" / "python")
    src = _copy_sources(tmp_path / "src")
    offline = ["--no-index", "--no-deps", "--no-build-isolation", "--disable-pip-version-check"]
    r = _run([py, "-m", "pip", "install", "-q", *offline, "--force-reinstall", str(src)], timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # From outside the source tree, so the installed cosmos_ros is the one imported and tested.
    r = _run(
        [py, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "fast", str(REPO / "test")],
        timeout=600,
        cwd=str(tmp_path),
        env={"HYPOTHESIS_PROFILE": "fast"},
    )
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    where = _run([py, "-c", "import cosmos_ros; print(cosmos_ros.__file__)"], timeout=60, cwd=str(tmp_path))
    assert str(venv310) in where.stdout, where.stdout + where.stderr
    summary = r.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, summary
