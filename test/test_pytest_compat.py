"""cosmos_ros.testing.pytest_compat: the check that the installed pytest can load launch_testing and
launch_pytest (scripts/setup.sh runs it). Fake plugins show that it can fail; the last test runs it on the
plugins installed here, where there are any."""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from _pytest import hookspec
from packaging.version import Version

from cosmos_ros.testing import pytest_compat


def _plugin(tmp_path: Path, name: str, source: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hook_argument_pytest_does_not_have_is_refused(tmp_path: Path) -> None:
    bad = _plugin(tmp_path, "bad_plugin", "def pytest_pycollect_makemodule(no_such_arg, parent):\n    pass\n")
    (problem,) = pytest_compat.hook_problems(bad)
    assert "no_such_arg" in problem and "pytest_pycollect_makemodule" in problem


def test_hook_with_arguments_pytest_has_is_accepted(tmp_path: Path) -> None:
    good = _plugin(tmp_path, "good_plugin", "def pytest_pycollect_makemodule(parent):\n    pass\n")
    assert pytest_compat.hook_problems(good) == []


def test_launch_testing_style_py_path_hook_matches_this_pytest(tmp_path: Path) -> None:
    """launch_testing's hook (Humble..Kilted) takes `path`; refused exactly when pytest's spec lacks it."""
    plugin = _plugin(tmp_path, "lt_style", "def pytest_pycollect_makemodule(path, parent):\n    pass\n")
    spec_args = inspect.signature(hookspec.pytest_pycollect_makemodule).parameters
    assert bool(pytest_compat.hook_problems(plugin)) == ("path" not in spec_args)


def test_fixture_attribute_use_matches_this_pytest(tmp_path: Path) -> None:
    """launch_pytest reads fixture._pytestfixturefunction, which pytest 8.4 removed."""
    plugin = _plugin(tmp_path, "lp_style", "def scope(f):\n    return f._pytestfixturefunction.scope\n")
    removed = Version(pytest.__version__) >= Version("8.4")
    assert bool(pytest_compat.fixture_attribute_problems(plugin)) == removed
    clean = _plugin(tmp_path, "lp_clean", "def scope(f):\n    return None\n")
    assert pytest_compat.fixture_attribute_problems(clean) == []


def test_installed_ros_pytest_plugins_load_with_this_pytest() -> None:
    """Fails (with the reasons and what to do) on a machine whose pytest cannot load its ROS plugins."""
    if (
        importlib.util.find_spec("launch_testing") is None
        and importlib.util.find_spec("launch_pytest") is None
    ):
        pytest.skip("neither launch_testing nor launch_pytest is installed (they come with ROS 2)")
    found = pytest_compat.problems()
    assert found == [], "\n".join(found) + "\n" + pytest_compat.advice()


def test_script_form_used_by_setup_exits_zero_here() -> None:
    """scripts/setup.sh runs the file as a script; here (its plugins loaded or absent) it must pass."""
    r = subprocess.run(
        [sys.executable, pytest_compat.__file__], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
