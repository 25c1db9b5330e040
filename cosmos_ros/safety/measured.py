"""The measured state in the limits' axis order, assembled from joint-state and pose messages' contents.

Pure (no rclpy): the node passes the fields it took from ``JointState`` / ``PoseStamped``; the supervisor
gets ``values()`` once ``complete``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class MeasuredState:
    """Assembles the measured positions ``[D]`` (limits axis order) from JointState / PoseStamped messages.

    Why by NAME: joint_state_broadcaster orders joints as the URDF/hardware does, and several publishers may
    each carry a subset (arm driver + gripper driver); positions are matched to axes by joint name, other
    joints are ignored, and the array is complete only once every axis has been seen.

    Args:
        axis_names: the action space's axes (``SafetyLimits.axis_names``).
        frame_id: frame a measured PoseStamped must be in (the limits frame).
    """

    POSE_FIELDS = ("x", "y", "z", "qx", "qy", "qz", "qw")

    def __init__(self, axis_names: tuple[str, ...], frame_id: str) -> None:
        self._index = {n: i for i, n in enumerate(axis_names)}
        self._values = np.full(len(axis_names), np.nan)
        self._frame_id = frame_id
        self.rejected = 0  # messages that could not be used (no positions, wrong frame)

    @property
    def frame_id(self) -> str:
        return self._frame_id

    @property
    def complete(self) -> bool:
        return not bool(np.isnan(self._values).any())

    def missing(self) -> list[str]:
        return [n for n, i in self._index.items() if np.isnan(self._values[i])]

    def values(self) -> np.ndarray:
        return self._values.copy()

    def update_joint_state(self, names: list[str], positions: Any) -> bool:
        """Take the positions of known joints; False (counted) if the message carries no usable positions."""
        if len(positions) != len(names):
            self.rejected += 1  # effort-only or malformed message: no positions to use
            return False
        used = False
        for name, pos in zip(names, positions, strict=True):
            i = self._index.get(name)
            if i is not None:
                self._values[i] = pos
                used = True
        return used

    def update_pose(self, frame_id: str, xyz_xyzw: tuple[float, ...]) -> bool:
        """Take a measured end-effector pose; False (counted) if it is in another frame than the limits."""
        if frame_id != self._frame_id:
            self.rejected += 1
            return False
        for name, v in zip(self.POSE_FIELDS, xyz_xyzw, strict=True):
            i = self._index.get(name)
            if i is not None:
                self._values[i] = v
        return True
