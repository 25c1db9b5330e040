"""Scripted expert: inverse kinematics to the named cube -> an absolute 7-joint target + gripper opening.

Why a separate pybullet client that always starts from the same pose: pybullet's IK is iterative from the
current joint state, so solving in the live scene would make the target depend on where the arm happens to
be. Solving on a private copy of the Panda reset to one fixed seed pose makes the target a *function of the
cube position only*, which is what a policy that sees one image and predicts the target can learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cosmos_ros.sim.config import TaskConfig
from cosmos_ros.sim.scene import GRASP_LINK, PANDA_URDF, _import_pybullet

# Grasp point pointing straight down (gripper's z axis along -world z).
_DOWN_EULER = (np.pi, 0.0, 0.0)
_IK_ROUNDS = 8
_IK_TOLERANCE_M = 0.005


class IkExpert:
    """IK targets for the Panda grasp point, within ``lower``/``upper`` (rad, 7 arm joints)."""

    def __init__(
        self, task: TaskConfig, lower: Sequence[float], upper: Sequence[float], margin_rad: float = 0.05
    ) -> None:
        if len(lower) != 7 or len(upper) != 7:
            raise ValueError(f"lower/upper must have 7 values, got {len(lower)}, {len(upper)}")
        self.task = task
        self.lower = np.asarray(lower, dtype=float) + margin_rad
        self.upper = np.asarray(upper, dtype=float) - margin_rad
        if np.any(self.lower >= self.upper):
            raise ValueError(
                f"empty joint range after the {margin_rad} rad margin: {self.lower} .. {self.upper}"
            )
        self._p, data = _import_pybullet()
        self._client = self._p.connect(self._p.DIRECT)
        self._p.setAdditionalSearchPath(data.getDataPath(), physicsClientId=self._client)
        self._robot = self._p.loadURDF(PANDA_URDF, useFixedBase=True, physicsClientId=self._client)
        self._movable = [
            j
            for j in range(self._p.getNumJoints(self._robot, physicsClientId=self._client))
            if self._p.getJointInfo(self._robot, j, physicsClientId=self._client)[2] != self._p.JOINT_FIXED
        ]
        names = {
            self._p.getJointInfo(self._robot, j, physicsClientId=self._client)[12].decode(): j
            for j in range(self._p.getNumJoints(self._robot, physicsClientId=self._client))
        }
        self._grasp = names[GRASP_LINK]

    def close(self) -> None:
        if self._client >= 0:
            self._p.disconnect(self._client)
            self._client = -1

    def target_for(self, cube_centre: Sequence[float]) -> np.ndarray:
        """Absolute target [7 joints (rad), gripper opening (m)]: the grasp point above ``cube_centre``.

        Raises:
            RuntimeError: IK does not get within 5 mm of the aim point inside the joint range.
        """
        aim = np.asarray(cube_centre, dtype=float) + np.array([0.0, 0.0, self.task.approach_height_m])
        q = self._solve(aim)
        return np.concatenate([q, [self.task.home[7]]]).astype(np.float64)

    def _solve(self, aim: np.ndarray) -> np.ndarray:
        p, cid = self._p, self._client
        home = np.asarray(self.task.home[:7])
        fingers = [self.task.home[7] / 2] * 2
        seed_pose = [*home, *fingers]
        for j, q in zip(self._movable, seed_pose, strict=True):
            p.resetJointState(self._robot, j, q, physicsClientId=cid)
        orn = p.getQuaternionFromEuler(_DOWN_EULER)
        lower = [*self.lower, 0.0, 0.0]
        upper = [*self.upper, 0.04, 0.04]
        ranges = [u - lo for lo, u in zip(lower, upper, strict=True)]
        q = np.asarray(home)
        for _ in range(_IK_ROUNDS):
            sol = p.calculateInverseKinematics(
                self._robot, self._grasp, aim.tolist(), orn,
                lowerLimits=lower, upperLimits=upper, jointRanges=ranges, restPoses=seed_pose,
                maxNumIterations=200, residualThreshold=1e-5, physicsClientId=cid,
            )  # fmt: skip
            q = np.clip(np.asarray(sol[:7]), self.lower, self.upper)
            for j, value in zip(self._movable, [*q, *fingers], strict=True):
                p.resetJointState(self._robot, j, value, physicsClientId=cid)
        reached = np.asarray(
            p.getLinkState(self._robot, self._grasp, computeForwardKinematics=1, physicsClientId=cid)[4]
        )
        error = float(np.linalg.norm(reached - aim))
        if error > _IK_TOLERANCE_M:
            raise RuntimeError(f"IK misses {aim.round(3).tolist()} by {error:.4f} m within the joint range")
        return q
