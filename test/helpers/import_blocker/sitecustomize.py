"""Hide packages from every Python process that has this directory on PYTHONPATH (site imports it at start).

COSMOS_ROS_BLOCK_IMPORTS names top-level packages, comma-separated; importing one (or a submodule) raises
ModuleNotFoundError as if it were not installed. When COSMOS_ROS_BLOCK_LOG names a file, each attempt is
appended to it, so an import swallowed by ``try/except ImportError`` is still seen. Used by
``scripts/test.sh --fast`` (the pure-core tier runs without ROS and the model stack) and test_packaging.py.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from typing import Any

_NAMES = os.environ.get("COSMOS_ROS_BLOCK_IMPORTS", "").split(",")
_BLOCKED = frozenset(n.strip() for n in _NAMES if n.strip())
_LOG = os.environ.get("COSMOS_ROS_BLOCK_LOG", "")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] not in _BLOCKED:
            return None
        if _LOG:
            with open(_LOG, "a", encoding="utf-8") as log:
                log.write(f"{os.getpid()} {fullname}\n")
        raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by this test)", name=fullname)


if _BLOCKED:
    sys.meta_path.insert(0, _Blocker())
