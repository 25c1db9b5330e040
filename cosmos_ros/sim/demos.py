"""Demonstrations from the scripted expert: camera frames, goal texts, joint states and action chunks.

Per episode the expert's execution is simulated (PIDs tracking a minimum-jerk interpolation from the start
pose to the IK target); at ``decisions_per_episode`` decision points along it (the arm at varying poses)
the camera frame, the measured joints and the chunk of the next ``chunk`` targets at ``step_period`` are
recorded. Chunk modes:

* ``hold`` (default): the IK target repeated ``chunk`` times. The target is a function of the cube position
  only, which a tiny policy can learn from one image; the safety node's limiter shapes the motion.
* ``trajectory``: the expert's interpolated commands at ``t + (i+1)*step_period`` (a full reach trajectory).

Frame modes:

* ``dynamic`` (default): the frames come from the simulated execution above.
* ``kinematic``: the arm is set (no physics) to the expert's commanded pose at each decision time and
  rendered. Why: physics is ~90 % of the cost of an episode, and a policy that must generalise over cube
  layouts needs many layouts more than it needs the PIDs' few millimetres of tracking lag in the picture.
  The expert is not executed, so ``expert_success`` is not measured in this mode (recorded as False).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cosmos_ros.sim.config import ARM_JOINTS, JOINT_NAMES, SimConfig
from cosmos_ros.sim.expert import IkExpert
from cosmos_ros.sim.scene import PandaSim

CHUNK_MODES = ("hold", "trajectory")
FRAME_MODES = ("dynamic", "kinematic")


@dataclass(frozen=True)
class DemoConfig:
    episodes: int
    seed: int
    chunk: int = 16
    step_period: float = 1.0 / 15.0
    decisions_per_episode: int = 6
    decision_interval_s: float = 0.4
    chunk_mode: str = "hold"
    frame_mode: str = "dynamic"
    # Mean joint speed (rad/s) the expert's reach is planned at (its duration = largest joint move / this).
    expert_speed_rad_s: float = 0.6

    def __post_init__(self) -> None:
        for name in ("episodes", "chunk", "decisions_per_episode"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        for name in ("step_period", "decision_interval_s", "expert_speed_rad_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.chunk_mode not in CHUNK_MODES:
            raise ValueError(f"chunk_mode must be one of {CHUNK_MODES}, got {self.chunk_mode!r}")
        if self.frame_mode not in FRAME_MODES:
            raise ValueError(f"frame_mode must be one of {FRAME_MODES}, got {self.frame_mode!r}")


class MinJerkReach:
    """The expert's commanded trajectory: minimum-jerk from ``start`` to ``target`` (both [8])."""

    def __init__(self, start: np.ndarray, target: np.ndarray, speed_rad_s: float) -> None:
        self.start = np.asarray(start, dtype=float)
        self.target = np.asarray(target, dtype=float)
        self.duration_s = max(1.0, float(np.max(np.abs(self.target[:7] - self.start[:7]))) / speed_rad_s)

    def __call__(self, t: float) -> np.ndarray:
        s = min(max(t / self.duration_s, 0.0), 1.0)
        blend = 10 * s**3 - 15 * s**4 + 6 * s**5
        return self.start + (self.target - self.start) * blend


def make_expert(sim: PandaSim) -> IkExpert:
    """An IK expert within the sim's URDF joint range."""
    assert sim.model is not None, "reset() the sim first"
    return IkExpert(sim.config.task, sim.model.lower[:7], sim.model.upper[:7])


def generate_demos(
    sim_config: SimConfig, demo: DemoConfig, progress: Callable[[int], None] | None = None
) -> dict[str, np.ndarray]:
    """Run the expert on ``demo.episodes`` episodes (seeds ``demo.seed + i``); returns the npz arrays."""
    sim = PandaSim(sim_config)
    sim.reset(demo.seed)
    expert = make_expert(sim)
    frames, goals, actions, joints, episode_ids, successes = [], [], [], [], [], []
    try:
        for i in range(demo.episodes):
            seed = demo.seed + i
            episode = sim.reset(seed)
            target = expert.target_for(episode.cubes[episode.goal_colour][0])
            reach = MinJerkReach(sim.joint_positions(), target, demo.expert_speed_rad_s)
            decision_times = [k * demo.decision_interval_s for k in range(demo.decisions_per_episode)]
            if demo.frame_mode == "kinematic":
                for t in decision_times:
                    sim.set_joint_positions(reach(t))
                    frames.append(sim.render())
                    goals.append(episode.goal_text)
                    joints.append(sim.joint_positions())
                    actions.append(_chunk(reach, target, t, demo))
                    episode_ids.append(seed)
                successes.append(False)
                if progress is not None:
                    progress(i)
                continue
            horizon = max(decision_times[-1], reach.duration_s) + 0.5
            while sim.time_s < horizon - 1e-9:
                if decision_times and sim.time_s >= decision_times[0] - 1e-9:
                    decision_times.pop(0)
                    frames.append(sim.render())
                    goals.append(episode.goal_text)
                    joints.append(sim.joint_positions())
                    actions.append(_chunk(reach, target, sim.time_s, demo))
                    episode_ids.append(seed)
                refusal = sim.command(JOINT_NAMES, reach(sim.time_s + sim_config.tick_s))
                if refusal is not None:
                    raise RuntimeError(f"expert command refused in episode {seed}: {refusal.detail}")
                sim.tick()
            successes.append(sim.success_time_s is not None)
            if progress is not None:
                progress(i)
    finally:
        expert.close()
        sim.close()
    return {
        "frames": np.stack(frames).astype(np.uint8),
        "goals": np.array(goals),
        "actions": np.stack(actions).astype(np.float32),
        "joint_positions": np.stack(joints).astype(np.float32),
        "episode": np.array(episode_ids, dtype=np.int64),
        "expert_success": np.array(successes, dtype=bool),
        "step_period": np.array(demo.step_period),
        "seed": np.array(demo.seed, dtype=np.int64),
        "image_size": np.array([sim_config.camera.height, sim_config.camera.width], dtype=np.int64),
        "joint_names": np.array(JOINT_NAMES),
        "chunk_mode": np.array(demo.chunk_mode),
        "frame_mode": np.array(demo.frame_mode),
    }


# Arrays with one row per sample (or per episode) are joined; the rest are metadata that must agree.
_ROW_KEYS = ("frames", "goals", "actions", "joint_positions", "episode", "expert_success")


def concat_demo_arrays(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join the outputs of several ``generate_demos`` runs (e.g. one per worker) into one set.

    The first part's ``seed`` is kept; parts must agree on the other metadata (image size, step period, ...)
    and must not share an episode seed. ``frame_mode`` may differ (a set of dynamic and kinematic frames is
    labelled with both); files written before it existed count as ``dynamic``.
    """
    if not parts:
        raise ValueError("no demonstration parts to join")
    parts = [{"frame_mode": np.array("dynamic"), **p} for p in parts]
    first = parts[0]
    for i, part in enumerate(parts[1:], start=1):
        for key in first:
            if key in (*_ROW_KEYS, "seed", "frame_mode"):
                continue
            if key not in part or not np.array_equal(part[key], first[key]):
                theirs = part.get(key)
                raise ValueError(f"demonstration part {i} differs in {key!r}: {theirs} vs {first[key]}")
    joined = {key: np.concatenate([p[key] for p in parts]) for key in _ROW_KEYS}
    episodes = np.concatenate([np.unique(p["episode"]) for p in parts])
    if np.unique(episodes).size != episodes.size:
        raise ValueError("demonstration parts share episode seeds")
    modes = sorted({str(p["frame_mode"]) for p in parts} - {""})
    return {**first, **joined, "frame_mode": np.array("+".join(modes))}


def _chunk(reach: MinJerkReach, target: np.ndarray, now: float, demo: DemoConfig) -> np.ndarray:
    if demo.chunk_mode == "hold":
        return np.repeat(target[None, :], demo.chunk, axis=0)
    return np.stack([reach(now + (i + 1) * demo.step_period) for i in range(demo.chunk)])


__all__ = [
    "ARM_JOINTS",
    "CHUNK_MODES",
    "FRAME_MODES",
    "DemoConfig",
    "MinJerkReach",
    "concat_demo_arrays",
    "generate_demos",
    "make_expert",
]
