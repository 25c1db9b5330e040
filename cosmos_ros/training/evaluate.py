"""Offline evaluation of a trained policy: its plans on held-out demonstrations vs the expert and the mean.

Predictions go through ``PolicyRuntime.plan`` (loader, backend, action-space profile: the planner's path), so
the numbers describe the model as the planner runs it. Two measures:

- action error: mean absolute error (rad) over the 7 arm joints and all chunk steps, against the expert's
  chunk; the baseline is the mean predictor (the training data's per-column mean, i.e. the profile's
  normalisation mean), which is what a policy ignoring the image and the goal would do at best in L2;
- reach error: where the predicted target would put the grasp point (pybullet forward kinematics of the sim's
  Panda URDF), as the distance to where the expert's target puts it, and the share of rows whose predicted
  grasp point lies within the task's success distance of the cube centre (the cube centre recovered from the
  expert's aim point: ``approach_height_m`` straight above it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

ARM_JOINTS = 7


@dataclass(frozen=True)
class ActionErrors:
    """Mean absolute joint error (rad) of the model and of the mean predictor, over ``rows`` rows."""

    rows: int
    model_mae_rad: float
    mean_mae_rad: float
    model_mae_per_joint: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """model / mean predictor (< 1 beats the mean)."""
        return self.model_mae_rad / self.mean_mae_rad if self.mean_mae_rad > 0 else float("inf")


def predict(
    runtime: Any, frames: np.ndarray, goals: np.ndarray, progress: Callable[[int], None] | None = None
) -> np.ndarray:
    """``[N, T, D]`` plans of ``runtime`` (a ``PolicyRuntime``) for each frame and goal; row i uses seed i."""
    out = []
    for i, (frame, goal) in enumerate(zip(frames, goals, strict=True)):
        out.append(runtime.plan(np.ascontiguousarray(frame), str(goal), seed=i).values)
        if progress is not None:
            progress(i + 1)
    return np.stack(out)


def action_errors(pred: np.ndarray, truth: np.ndarray, mean: np.ndarray) -> ActionErrors:
    """Arm-joint errors of ``pred`` and of the constant ``mean [>=7]`` against ``truth [N, T, >=7]``."""
    p = np.asarray(pred, dtype=np.float64)[..., :ARM_JOINTS]
    t = np.asarray(truth, dtype=np.float64)[..., :ARM_JOINTS]
    m = np.asarray(mean, dtype=np.float64)[:ARM_JOINTS]
    if p.shape != t.shape:
        raise ValueError(f"predictions {p.shape} and truth {t.shape} differ in shape")
    per_joint = np.abs(p - t).mean(axis=(0, 1))
    return ActionErrors(
        rows=int(p.shape[0]),
        model_mae_rad=float(np.abs(p - t).mean()),
        mean_mae_rad=float(np.abs(m - t).mean()),
        model_mae_per_joint=tuple(float(v) for v in per_joint),
    )


class GraspFk:
    """Forward kinematics of the sim's Panda grasp point (a private pybullet DIRECT client)."""

    def __init__(self) -> None:
        from cosmos_ros.sim.scene import GRASP_LINK, PANDA_URDF, _import_pybullet

        self._p, data = _import_pybullet()
        self._cid = self._p.connect(self._p.DIRECT)
        self._p.setAdditionalSearchPath(data.getDataPath(), physicsClientId=self._cid)
        self._robot = self._p.loadURDF(PANDA_URDF, useFixedBase=True, physicsClientId=self._cid)
        infos = [
            self._p.getJointInfo(self._robot, j, physicsClientId=self._cid)
            for j in range(self._p.getNumJoints(self._robot, physicsClientId=self._cid))
        ]
        self._arm = [i[0] for i in infos if i[2] == self._p.JOINT_REVOLUTE][:ARM_JOINTS]
        self._grasp = next(i[0] for i in infos if i[12].decode() == GRASP_LINK)

    def close(self) -> None:
        if self._cid >= 0:
            self._p.disconnect(self._cid)
            self._cid = -1

    def grasp_position(self, joints: np.ndarray) -> np.ndarray:
        """World position (m) of the grasp point with the 7 arm joints at ``joints``."""
        for j, q in zip(self._arm, np.asarray(joints, dtype=float)[:ARM_JOINTS], strict=True):
            self._p.resetJointState(self._robot, j, float(q), physicsClientId=self._cid)
        state = self._p.getLinkState(
            self._robot, self._grasp, computeForwardKinematics=1, physicsClientId=self._cid
        )
        return np.asarray(state[4], dtype=np.float64)


@dataclass(frozen=True)
class ReachErrors:
    """Grasp-point distances (m) of the last planned target to the expert's, model and mean predictor."""

    model_median_m: float
    model_mean_m: float
    mean_predictor_median_m: float
    model_success_share: float
    mean_predictor_success_share: float


def reach_errors(
    pred: np.ndarray, truth: np.ndarray, mean: np.ndarray, approach_height_m: float, success_distance_m: float
) -> ReachErrors:
    """Compare where the last step of each chunk would put the grasp point (see the module docstring)."""
    fk = GraspFk()
    try:
        expert = np.stack([fk.grasp_position(t[-1]) for t in truth])
        model = np.stack([fk.grasp_position(p[-1]) for p in pred])
        baseline = fk.grasp_position(mean)
    finally:
        fk.close()
    cube = expert - np.array([0.0, 0.0, approach_height_m])
    d_model = np.linalg.norm(model - expert, axis=1)
    d_mean = np.linalg.norm(baseline[None] - expert, axis=1)
    return ReachErrors(
        model_median_m=float(np.median(d_model)),
        model_mean_m=float(d_model.mean()),
        mean_predictor_median_m=float(np.median(d_mean)),
        model_success_share=float(np.mean(np.linalg.norm(model - cube, axis=1) <= success_distance_m)),
        mean_predictor_success_share=float(
            np.mean(np.linalg.norm(baseline[None] - cube, axis=1) <= success_distance_m)
        ),
    )
