"""What a node's diagnostics computation returns: a level, a one-line summary and key/values (no rclpy).

The pure functions that fill it (``cosmos_ros.safety.diagnostics``, ``cosmos_ros.planner_diagnostics``) are
tested without ROS; the nodes only turn a :class:`DiagnosticsReport` into a ``diagnostic_msgs`` status.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Level(IntEnum):
    """Severity; values match ``diagnostic_msgs/DiagnosticStatus`` OK/WARN/ERROR."""

    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class DiagnosticsReport:
    """Level, one-line summary and the key/values (all strings, in a stable order)."""

    level: Level
    message: str
    values: dict[str, str]
