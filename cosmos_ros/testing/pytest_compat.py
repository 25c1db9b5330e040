"""Can the installed pytest load the installed ROS test plugins (launch_testing, launch_pytest)?

On a ROS machine ``launch_testing`` and ``launch_pytest`` are installed as pytest plugins (``pytest11`` entry
points), so *every* pytest run loads them, launch tests or not. Both are written against the pytest that
the distro ships (python3-pytest: Humble 6.2.5 on Ubuntu 22.04, Jazzy and Kilted 7.4.4 on Ubuntu 24.04):

* launch_testing's hook ``pytest_pycollect_makemodule(path, parent)`` takes the ``py.path`` argument ``path``,
  which pytest 9 removed from the hook; pytest then refuses the plugin (``PluginValidationError``) and no test
  runs at all.
* launch_pytest reads ``fixture._pytestfixturefunction``, which pytest 8.4 removed.

:func:`problems` finds both before pytest does, and says what to do. ``scripts/setup.sh`` runs this file as a
script (``python cosmos_ros/testing/pytest_compat.py``; exit status 1 and the reasons on stderr when
incompatible), so it imports nothing from cosmos_ros.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from importlib import metadata
from types import ModuleType

DISTRO_PYTEST = "Humble 6.2.5, Jazzy 7.4.4, Kilted 7.4.4 (python3-pytest of Ubuntu 22.04 / 24.04)"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown version"


def hook_problems(plugin: ModuleType | object) -> list[str]:
    """Why pytest would refuse ``plugin``'s hook implementations; [] if it accepts them.

    Registers the plugin with a fresh ``PytestPluginManager`` (pytest's own hook specifications, and its
    rule that any ``pytest_*`` function is a hook implementation), which is the check pytest itself makes at
    start-up. Hooks that pytest does not specify are left unchecked, as pytest leaves them until a plugin
    adds their specification.
    """
    import pluggy
    from _pytest.config import PytestPluginManager

    pm = PytestPluginManager()
    try:
        pm.register(plugin)
    except pluggy.PluginValidationError as exc:
        return [str(exc)]
    return []


def fixture_attribute_problems(plugin: ModuleType) -> list[str]:
    """launch_pytest's use of ``fixture._pytestfixturefunction``, if this pytest no longer sets it."""
    import pytest

    try:
        source = inspect.getsource(plugin)
    except (OSError, TypeError):
        return []
    if "_pytestfixturefunction" not in source:
        return []

    @pytest.fixture
    def probe() -> None:  # pragma: no cover - never run, only inspected
        return None

    if hasattr(probe, "_pytestfixturefunction"):
        return []
    return ["it reads fixture._pytestfixturefunction, which this pytest no longer sets (gone since 8.4)"]


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def problems() -> list[str]:
    """Every incompatibility between the installed pytest and the installed ROS pytest plugins."""
    import pytest

    found: list[str] = []
    hooks = _import("launch_testing.pytest.hooks")
    if hooks is not None:
        for p in hook_problems(hooks):
            found.append(f"launch_testing {_version('launch_testing')} vs pytest {pytest.__version__}: {p}")
    plugin = _import("launch_pytest.plugin")
    if plugin is not None:
        for p in hook_problems(plugin) + fixture_attribute_problems(plugin):
            found.append(f"launch_pytest {_version('launch_pytest')} vs pytest {pytest.__version__}: {p}")
    return found


def advice() -> str:
    return (
        f"Use the pytest your ROS distro ships ({DISTRO_PYTEST}): in the virtual environment, "
        "`pip uninstall pytest` so the system one is used (the venv has --system-site-packages), or "
        "`pip install 'pytest<8.4'`."
    )


def main() -> int:
    found = problems()
    for p in found:
        print(f"pytest_compat: INCOMPATIBLE: {p}", file=sys.stderr)
    if found:
        print(f"pytest_compat: {advice()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
