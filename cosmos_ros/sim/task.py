"""The task: "touch the <colour> cube". Everything an episode is made of is drawn from its seed here.

Pure numpy (no simulator), so the episode distribution is testable and identical across processes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from cosmos_ros.sim.config import JOINT_NAMES, TaskConfig

GOAL_TEMPLATE = "touch the {colour} cube"
_GOAL_RE = re.compile(r"^\s*touch the (\w+) cube\s*$", re.IGNORECASE)
_MAX_DRAWS = 1000


@dataclass(frozen=True)
class Episode:
    """One seeded episode: cube centres (m, world) and yaw (rad), the goal colour, the arm's start pose."""

    seed: int
    cubes: dict[str, tuple[tuple[float, float, float], float]]
    goal_colour: str
    start_joints: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.goal_colour not in self.cubes:
            raise ValueError(f"goal_colour {self.goal_colour!r} is not one of the cubes {sorted(self.cubes)}")
        if len(self.start_joints) != len(JOINT_NAMES):
            raise ValueError(f"start_joints must have {len(JOINT_NAMES)} values, got {self.start_joints}")

    @property
    def goal_text(self) -> str:
        return goal_text(self.goal_colour)


def goal_text(colour: str) -> str:
    return GOAL_TEMPLATE.format(colour=colour)


def parse_goal(text: str) -> str | None:
    """The colour a goal text names, or ``None`` if it is not a "touch the <colour> cube" goal."""
    match = _GOAL_RE.match(text)
    return match.group(1).lower() if match else None


def sample_episode(seed: int, task: TaskConfig) -> Episode:
    """Draw cube positions (``min_cube_separation_m`` apart), goal and start pose from ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    z = task.cube_size_m / 2
    placed: list[np.ndarray] = []
    for _ in range(_MAX_DRAWS):
        xy = np.array([rng.uniform(*task.cube_x_range_m), rng.uniform(*task.cube_y_range_m)])
        if all(np.linalg.norm(xy - other) >= task.min_cube_separation_m for other in placed):
            placed.append(xy)
            if len(placed) == len(task.colours):
                break
    else:
        raise ValueError(
            f"could not place {len(task.colours)} cubes {task.min_cube_separation_m} m apart in the ranges"
        )
    yaws = rng.uniform(-np.pi / 4, np.pi / 4, size=len(task.colours))
    cubes = {
        colour: ((float(xy[0]), float(xy[1]), float(z)), float(yaw))
        for colour, xy, yaw in zip(task.colours, placed, yaws, strict=True)
    }
    goal = str(task.colours[int(rng.integers(len(task.colours)))])
    jitter = rng.uniform(-task.home_jitter_rad, task.home_jitter_rad, size=7)
    start = (*(float(h + j) for h, j in zip(task.home[:7], jitter, strict=True)), float(task.home[7]))
    return Episode(seed=int(seed), cubes=cubes, goal_colour=goal, start_joints=start)
