"""scripts/: the machine-wide /opt/python links refuse to change hands (on a scratch root, never the real
one), scripts/test.sh names the install space it tests, and the pip set-up has `colcon test` with package
selection."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINKS = REPO / "scripts" / "opt_python_links.sh"


def _links(root: Path, inc: Path, site: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(LINKS), str(root), "3.11", str(inc), str(site)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


def test_second_environment_does_not_take_the_links_of_a_live_first(tmp_path: Path) -> None:
    root, inc = tmp_path / "opt" / "cp311-cp311", tmp_path / "include"
    site_a, site_b = tmp_path / "a" / "site-packages", tmp_path / "b" / "site-packages"
    for d in (inc, site_a, site_b):
        d.mkdir(parents=True)
    link = root / "lib" / "python3.11" / "site-packages"
    assert _links(root, inc, site_a).returncode == 0
    assert link.resolve() == site_a.resolve() and (root / "include" / "python3.11").resolve() == inc.resolve()
    assert _links(root, inc, site_a).returncode == 0  # idempotent
    second = _links(root, inc, site_b)
    assert second.returncode == 3, second.stdout + second.stderr
    assert str(site_a) in second.stderr and "COSMOS_ROS_REPOINT_OPT_PYTHON=1" in second.stderr
    assert link.resolve() == site_a.resolve(), "the first environment's link was re-pointed"
    # Knowingly taken over; and a link to an environment that is gone is re-pointed without asking.
    assert _links(root, inc, site_b, COSMOS_ROS_REPOINT_OPT_PYTHON="1").returncode == 0
    assert link.resolve() == site_b.resolve()
    shutil.rmtree(site_b.parent)
    third = _links(root, inc, site_a)
    assert third.returncode == 0 and "re-pointing" in third.stdout and link.resolve() == site_a.resolve()


def test_setup_uses_the_links_script_and_not_its_own_ln() -> None:
    text = (REPO / "scripts" / "setup.sh").read_text()
    assert "scripts/opt_python_links.sh" in text and "ln -s" not in text


def test_test_script_names_the_install_space(tmp_path: Path) -> None:
    if not (REPO / "install" / "setup.bash").exists():
        pytest.skip("no install space in this checkout (scripts/setup.sh builds it)")
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "test.sh"), "--collect-only", "-q", "test/test_launch_support.py"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
        env={**os.environ, "COSMOS_ROS_SKIP_SETUP": "1"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("[test] pytest against the install space"))
    assert f"({REPO}/install/" in line, line


def test_colcon_test_has_package_selection() -> None:
    """README: `colcon test --packages-select cosmos_ros` (colcon-package-selection, pinned for pip)."""
    colcon = shutil.which("colcon")
    if colcon is None:
        pytest.skip("colcon is not installed (scripts/setup.sh installs it, ROS brings its own)")
    r = subprocess.run([colcon, "test", "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and "--packages-select" in r.stdout, r.stdout + r.stderr
    pins = (REPO / "requirements-ros-wheels.txt").read_text().splitlines()
    assert "colcon-package-selection==0.2.10" in pins
