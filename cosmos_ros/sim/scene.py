"""The simulated scene: a Franka Panda on a table, coloured cubes, a fixed camera (pybullet, headless CPU).

:class:`PandaSim` owns one pybullet DIRECT client. ``reset(seed)`` rebuilds the world from scratch (so an
episode's physics never depends on the previous one), places the cubes and the arm's start pose from the
seed, and picks the goal colour. ``tick()`` advances one control tick (``tick_s``, several physics steps) with
the per-joint PIDs of :mod:`cosmos_ros.sim.controllers` driving the joints in ``TORQUE_CONTROL`` after the
default velocity motors are switched off: the arm moves only through simulated torques.

Sim time starts at 0 on each reset and advances only in ``tick()``; the camera renders at the current state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cosmos_ros.sim.config import ARM_JOINTS, COLOURS, GRIPPER, JOINT_NAMES, SimConfig
from cosmos_ros.sim.controllers import PidArray, Refusal, SetpointGate
from cosmos_ros.sim.task import Episode, sample_episode

PANDA_URDF = "franka_panda/panda.urdf"
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
GRASP_LINK = "panda_grasptarget"
TABLE_TOP_Z = 0.0


def _import_pybullet():  # -> (pybullet, pybullet_data)
    try:
        import pybullet
        import pybullet_data
    except ImportError as exc:  # pragma: no cover - the dependency is pinned in requirements.txt
        raise ImportError("the closed-loop simulation needs pybullet: pip install pybullet==3.2.7") from exc
    return pybullet, pybullet_data


@dataclass(frozen=True)
class JointModel:
    """What the URDF says about the controlled joints (arm joints, then the two fingers)."""

    names: tuple[str, ...]
    indices: tuple[int, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    effort: tuple[float, ...]
    grasp_link: int


class PandaSim:
    """One simulated episode at a time; not thread-safe (the node calls it from one callback group)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._p, self._data = _import_pybullet()
        self._client = self._p.connect(self._p.DIRECT)
        self.time_s = 0.0
        self.episode: Episode | None = None
        self.model: JointModel | None = None
        self._cube_ids: dict[str, int] = {}
        self.gate: SetpointGate | None = None
        self.pid: PidArray | None = None
        self.success_time_s: float | None = None

    def close(self) -> None:
        if self._client >= 0:
            self._p.disconnect(self._client)
            self._client = -1

    # ----------------------------------------------------------------------------------------------- reset
    def reset(self, seed: int) -> Episode:
        """Rebuild the world for episode ``seed``; returns the episode (goal, cube positions, start pose)."""
        p, cid = self._p, self._client
        cfg = self.config
        p.resetSimulation(physicsClientId=cid)
        p.setPhysicsEngineParameter(
            fixedTimeStep=cfg.physics_dt, deterministicOverlappingPairs=1, physicsClientId=cid
        )
        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        p.setAdditionalSearchPath(self._data.getDataPath(), physicsClientId=cid)
        self._build_table()
        self._robot = p.loadURDF(PANDA_URDF, [0, 0, TABLE_TOP_Z], useFixedBase=True, physicsClientId=cid)
        self.model = self._read_joint_model()
        episode = sample_episode(seed, cfg.task)
        self._cube_ids = {c: self._add_cube(c, pos, yaw) for c, (pos, yaw) in episode.cubes.items()}
        start = list(episode.start_joints)
        for _name, index, q in zip(
            self.model.names, self.model.indices, [*start[:7], start[7] / 2, start[7] / 2], strict=True
        ):
            p.resetJointState(self._robot, index, q, 0.0, physicsClientId=cid)
        # Switch the default velocity motors off: from here on only our torques move the joints.
        p.setJointMotorControlArray(
            self._robot,
            list(self.model.indices),
            p.VELOCITY_CONTROL,
            forces=[0.0] * len(self.model.indices),
            physicsClientId=cid,
        )
        self.gate = SetpointGate(JOINT_NAMES, self._command_min(), self._command_max(), cfg.cmd_timeout_s)
        self.gate.reset(self.joint_positions())
        gains = [cfg.pid[n] for n in ARM_JOINTS] + [cfg.pid[GRIPPER]] * 2
        self.pid = PidArray(gains, self.model.effort)
        self.time_s = 0.0
        self.episode = episode
        self.success_time_s = None
        return episode

    def _build_table(self) -> None:
        p, cid = self._p, self._client
        half = [0.6, 0.6, 0.02]
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=cid)
        vis = p.createVisualShape(
            p.GEOM_BOX, halfExtents=half, rgbaColor=[0.75, 0.7, 0.6, 1], physicsClientId=cid
        )
        p.createMultiBody(0, col, vis, [0.4, 0.0, TABLE_TOP_Z - half[2]], physicsClientId=cid)

    def _add_cube(self, colour: str, pos: tuple[float, float, float], yaw: float) -> int:
        p, cid = self._p, self._client
        h = self.config.task.cube_size_m / 2
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[h, h, h], physicsClientId=cid)
        vis = p.createVisualShape(
            p.GEOM_BOX, halfExtents=[h, h, h], rgbaColor=COLOURS[colour], physicsClientId=cid
        )
        orn = p.getQuaternionFromEuler([0, 0, yaw])
        return int(p.createMultiBody(0.1, col, vis, list(pos), orn, physicsClientId=cid))

    def _read_joint_model(self) -> JointModel:
        p, cid = self._p, self._client
        by_name: dict[str, tuple[int, float, float, float]] = {}
        grasp = -1
        for j in range(p.getNumJoints(self._robot, physicsClientId=cid)):
            info = p.getJointInfo(self._robot, j, physicsClientId=cid)
            by_name[info[1].decode()] = (j, float(info[8]), float(info[9]), float(info[10]))
            if info[12].decode() == GRASP_LINK:
                grasp = j
        names = (*ARM_JOINTS, *FINGER_JOINTS)
        missing = [n for n in names if n not in by_name]
        if missing or grasp < 0:
            raise RuntimeError(f"{PANDA_URDF} lacks joints {missing} or link {GRASP_LINK}")
        rows = [by_name[n] for n in names]
        return JointModel(
            names=names,
            indices=tuple(r[0] for r in rows),
            lower=tuple(r[1] for r in rows),
            upper=tuple(r[2] for r in rows),
            effort=tuple(r[3] for r in rows),
            grasp_link=grasp,
        )

    def _command_min(self) -> list[float]:
        assert self.model is not None
        return [*self.model.lower[:7], 0.0]

    def _command_max(self) -> list[float]:
        # The gripper setpoint is the opening: both fingers together.
        assert self.model is not None
        return [*self.model.upper[:7], self.model.upper[7] + self.model.upper[8]]

    # -------------------------------------------------------------------------------------------- commands
    def command(self, names: Sequence[str], values: Sequence[float] | np.ndarray) -> Refusal | None:
        """Setpoints (rad; m opening for ``gripper``) at the current sim time; refused -> the reason."""
        assert self.gate is not None, "reset() first"
        return self.gate.command(names, values, self.time_s)

    # -------------------------------------------------------------------------------------------- stepping
    def tick(self) -> None:
        """Advance one control tick (``tick_s``): ``steps_per_tick`` physics steps, PIDs in the loop."""
        assert self.gate is not None and self.pid is not None and self.model is not None, "reset() first"
        p, cid = self._p, self._client
        dt = self.config.physics_dt
        indices = list(self.model.indices)
        for _ in range(self.config.steps_per_tick):
            q, qd = self._physical_state()
            target8 = self.gate.setpoints(self._to_command(q), self.time_s)
            target = np.concatenate([target8[:7], [target8[7] / 2, target8[7] / 2]])
            ff = self._gravity(q) if self.config.gravity_compensation else None
            tau = self.pid.compute(target, q, qd, dt, ff)
            p.setJointMotorControlArray(
                self._robot, indices, p.TORQUE_CONTROL, forces=tau.tolist(), physicsClientId=cid
            )
            p.stepSimulation(physicsClientId=cid)
            self.time_s += dt
        if self.success_time_s is None and self.is_success():
            self.success_time_s = self.time_s

    def _physical_state(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.model is not None
        states = self._p.getJointStates(self._robot, list(self.model.indices), physicsClientId=self._client)
        return np.array([s[0] for s in states]), np.array([s[1] for s in states])

    def _gravity(self, q: np.ndarray) -> np.ndarray:
        zeros = [0.0] * len(q)
        return np.asarray(
            self._p.calculateInverseDynamics(
                self._robot, q.tolist(), zeros, zeros, physicsClientId=self._client
            )
        )

    @staticmethod
    def _to_command(q9: np.ndarray) -> np.ndarray:
        return np.concatenate([q9[:7], [q9[7] + q9[8]]])

    # -------------------------------------------------------------------------------------------- readings
    def joint_positions(self) -> np.ndarray:
        """Measured positions in :data:`JOINT_NAMES` order (7 arm joints in rad, gripper opening in m)."""
        return self._to_command(self._physical_state()[0])

    def joint_velocities(self) -> np.ndarray:
        return self._to_command(self._physical_state()[1])

    def grasp_position(self) -> np.ndarray:
        """World position of the Panda grasp point (``panda_grasptarget``), m."""
        assert self.model is not None
        state = self._p.getLinkState(
            self._robot, self.model.grasp_link, computeForwardKinematics=1, physicsClientId=self._client
        )
        return np.array(state[4])

    def cube_position(self, colour: str) -> np.ndarray:
        pos, _ = self._p.getBasePositionAndOrientation(self._cube_ids[colour], physicsClientId=self._client)
        return np.array(pos)

    def goal_distance(self) -> float:
        """Distance (m) of the grasp point to the centre of the cube the goal names."""
        assert self.episode is not None
        return float(np.linalg.norm(self.grasp_position() - self.cube_position(self.episode.goal_colour)))

    def is_success(self) -> bool:
        return self.goal_distance() <= self.config.task.success_distance_m

    def timed_out(self) -> bool:
        return self.time_s >= self.config.task.time_limit_s - 1e-9

    def set_joint_positions(self, q: Sequence[float] | np.ndarray) -> None:
        """Teleport the arm to ``q`` (:data:`JOINT_NAMES` order, gripper = opening split over both fingers).

        For re-rendering a recorded episode and forward kinematics only: it sets the state, with zero
        velocities, and bypasses the controllers. Do not ``tick()`` an episode after calling it.
        """
        assert self.model is not None, "reset() first"
        values = np.asarray(q, dtype=np.float64)
        if values.shape != (len(JOINT_NAMES),) or not np.all(np.isfinite(values)):
            raise ValueError(f"q must be {len(JOINT_NAMES)} finite values ({JOINT_NAMES}), got {q!r}")
        nine = [*values[:7], values[7] / 2, values[7] / 2]
        for index, v in zip(self.model.indices, nine, strict=True):
            self._p.resetJointState(self._robot, index, float(v), 0.0, physicsClientId=self._client)

    def render(self) -> np.ndarray:
        """The fixed camera's RGB image, uint8 [H, W, 3] (CPU renderer)."""
        p, cam = self._p, self.config.camera
        view = p.computeViewMatrix(cam.eye, cam.target, [0, 0, 1], physicsClientId=self._client)
        proj = p.computeProjectionMatrixFOV(
            cam.fov_deg, cam.width / cam.height, cam.near, cam.far, physicsClientId=self._client
        )
        _, _, rgba, _, _ = p.getCameraImage(
            cam.width, cam.height, view, proj, renderer=p.ER_TINY_RENDERER, physicsClientId=self._client
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(cam.height, cam.width, 4)[:, :, :3].copy()

    def camera_intrinsics(self) -> tuple[float, float, float, float]:
        """Pinhole (fx, fy, cx, cy) in pixels of the camera (for camera_info)."""
        cam = self.config.camera
        fy = cam.height / (2.0 * math.tan(math.radians(cam.fov_deg) / 2.0))
        return fy, fy, cam.width / 2.0, cam.height / 2.0
