"""Message types by name: the rclpy message class, and rosbags type definitions for writing bags (no rclpy).

Why lazy imports by name: a bag names its types as strings (``sensor_msgs/msg/Image``). rclpy needs the
generated class to create a publisher, but importing every package up front would make the standard types
depend on our own build: ``cosmos_ros.msg`` exists only in the colcon install space. So a class is imported
when a topic of that type is actually played or recorded.

For writing bags, rosbags needs each type's definition. Standard types come with its type store; others
(``cosmos_ros/msg/ActionSequence``, ``SafetyStatus``, or a user's package) are read from the ``.msg`` files
that ``rosidl`` installs under ``<prefix>/share/<pkg>/msg/`` (searched along ``AMENT_PREFIX_PATH``), or,
for this package, from ``msg/`` in the source tree, and registered with rosbags' ``get_types_from_msg`` so
the recorded bag carries their definitions.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from cosmos_ros.replay.errors import UnknownTypeError

_TYPE_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)/(msg)/([A-Za-z][A-Za-z0-9_]*)$")
# The source tree's msg/ (cosmos_ros/replay/types.py -> repo root); absent in an install space.
_SOURCE_MSG_DIR = Path(__file__).resolve().parents[2] / "msg"


def split_type(msgtype: str) -> tuple[str, str]:
    """``"pkg/msg/Name"`` -> ``("pkg", "Name")``.

    Raises:
        UnknownTypeError: Not of that form (ROS 1 ``pkg/Name``, services, typos).
    """
    m = _TYPE_RE.match(msgtype)
    if not m:
        raise UnknownTypeError(f"message type {msgtype!r} is not of the form 'package/msg/Name'")
    return m.group(1), m.group(3)


_SRV_EVENT_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)/srv/([A-Za-z][A-Za-z0-9_]*_Event)$")


def import_msg_class(msgtype: str) -> Any:
    """The generated Python class of ``pkg/msg/Name`` (``from pkg.msg import Name``), or of a service event
    ``pkg/srv/Name_Event`` (``from pkg.srv import Name_Event``; generated on Iron and later).

    Raises:
        UnknownTypeError: The package or the class cannot be imported; says which workspace to source.
    """
    event = _SRV_EVENT_RE.match(msgtype)
    pkg, name = (event.group(1), event.group(2)) if event else split_type(msgtype)
    kind = "srv" if event else "msg"
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
    except ImportError as exc:
        raise UnknownTypeError(
            f"message type {msgtype!r}: cannot import {pkg}.{kind} ({exc}); source the workspace that "
            f"builds '{pkg}' (for cosmos_ros: `source scripts/env.sh` after scripts/setup.sh)"
        ) from exc
    cls = getattr(module, name, None)
    if cls is None:
        raise UnknownTypeError(f"message type {msgtype!r}: {pkg}.{kind} has no class {name!r}")
    return cls


def why_not_importable(msgtype: str) -> str | None:
    """None if :func:`import_msg_class` finds the class, else its error message (a replay type check)."""
    try:
        import_msg_class(msgtype)
    except UnknownTypeError as exc:
        return str(exc)
    return None


def find_msg_file(msgtype: str) -> Path | None:
    """The ``.msg`` file defining ``msgtype``, from the ament prefixes or this package's source tree."""
    pkg, name = split_type(msgtype)
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidate = Path(prefix) / "share" / pkg / "msg" / f"{name}.msg"
        if candidate.is_file():
            return candidate
    if pkg == "cosmos_ros" and (_SOURCE_MSG_DIR / f"{name}.msg").is_file():
        return _SOURCE_MSG_DIR / f"{name}.msg"
    return None


def make_typestore(distro: Stores = Stores.ROS2_KILTED) -> Typestore:
    """A rosbags type store with the standard types of ``distro``."""
    return get_typestore(distro)


def ensure_type(store: Typestore, msgtype: str, _depth: int = 0) -> None:
    """Make ``msgtype`` (and the non-standard types it uses) known to ``store``.

    Raises:
        UnknownTypeError: Neither the store nor any ``.msg`` file defines it.
    """
    if msgtype in store.types:
        return
    path = find_msg_file(msgtype)
    if path is None:
        raise UnknownTypeError(
            f"no definition for message type {msgtype!r}: not a standard type and no "
            f"share/{split_type(msgtype)[0]}/msg/{split_type(msgtype)[1]}.msg on AMENT_PREFIX_PATH"
        )
    types = get_types_from_msg(path.read_text(), msgtype)
    if _depth > 16:
        raise UnknownTypeError(f"message type {msgtype!r}: nesting too deep while resolving its fields")
    # Register field types first (a user's message may use other non-standard messages).
    for fields in types.values():
        for dep in _referenced_types(fields):
            if dep != msgtype and dep not in types:
                ensure_type(store, dep, _depth + 1)
    store.register(types)


def _referenced_types(typedef: Any) -> set[str]:
    """Message type names used by the fields of a rosbags type definition (nested tuples)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, str) and _TYPE_RE.match(node):
            found.add(node)
        elif isinstance(node, (tuple, list)):
            for item in node:
                walk(item)

    walk(typedef)
    return found


def msgdef_of(store: Typestore, msgtype: str) -> tuple[str, str]:
    """``(message definition text, RIHS01 hash)`` of a type, as a bag's connection records them."""
    ensure_type(store, msgtype)
    msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
    return msgdef, store.hash_rihs01(msgtype)
