"""Demonstrations for policy training: the ``.npz`` format, its validation, and a synthetic stand-in.

Format (written by ``cosmos_ros.tools.make_sim_demos``; one row per training sample):
- ``frames`` uint8 ``[N, H, W, 3]``: the camera image the policy is conditioned on;
- ``goals`` str ``[N]``: the instruction, e.g. ``"touch the red cube"``;
- ``actions`` float32 ``[N, T, A]``: the action chunk that follows the frame, in physical units (for the Panda
  sim: 7 joint targets in rad + gripper opening in m, absolute, one step per ``1 / action_rate_hz``);
- ``joint_positions`` ``[N, A]``: the measured state at the frame (not seen by the policy, kept for analysis);
- ``episode`` int ``[N]``: which episode a row comes from (held-out splits are made by episode, so frames of
  one episode never land on both sides);
- optional metadata (``action_rate_hz``, ``joint_names``, ...), kept as a plain dict.

Why a synthetic stand-in: training and its tests must not depend on the simulator (CI without pybullet, and
development before the sim existed). ``make_synthetic_demos`` draws coloured squares on a background; the
target joints are a smooth function of the *named* square's position, so the goal text matters the same way
it does in the sim task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED_KEYS = ("frames", "goals", "actions", "joint_positions", "episode")
PANDA_JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))

# Synthetic scene: object colours (RGB) named in the goals; distinct hues, so a 16x-downsampling VAE keeps
# them apart.
SYNTHETIC_COLOURS = {"red": (220, 30, 30), "green": (30, 190, 40), "blue": (30, 60, 220)}
_BACKGROUND = (120, 110, 100)


@dataclass(frozen=True, eq=False)
class DemoSet:
    """Validated demonstrations (see the module docstring for the meaning of each array).

    Attributes:
        frames: ``[N, H, W, 3]`` uint8.
        goals: ``[N]`` str.
        actions: ``[N, T, A]`` float32, physical units.
        joint_positions: ``[N, A]`` float32.
        episode: ``[N]`` int64.
        metadata: Anything else the file carried (scalars and small arrays), by key.
    """

    frames: np.ndarray
    goals: np.ndarray
    actions: np.ndarray
    joint_positions: np.ndarray
    episode: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        f, a = self.frames, self.actions
        if f.ndim != 4 or f.shape[3] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frames must be [N, H, W, 3] uint8, got shape {f.shape} dtype {f.dtype}")
        n = f.shape[0]
        if n < 1:
            raise ValueError("demonstrations are empty (frames has 0 rows)")
        if a.ndim != 3 or a.shape[0] != n or a.shape[1] < 1 or a.shape[2] < 1:
            raise ValueError(f"actions must be [N={n}, T, A], got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("actions contain NaN or Inf")
        if self.goals.shape != (n,):
            raise ValueError(f"goals must be [N={n}], got shape {self.goals.shape}")
        if any(not str(g).strip() for g in self.goals):
            raise ValueError("goals must be non-empty strings")
        if self.joint_positions.shape != (n, a.shape[2]):
            raise ValueError(
                f"joint_positions must be [N={n}, A={a.shape[2]}], got shape {self.joint_positions.shape}"
            )
        if self.episode.shape != (n,):
            raise ValueError(f"episode must be [N={n}], got shape {self.episode.shape}")

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def chunk_size(self) -> int:
        return int(self.actions.shape[1])

    @property
    def action_width(self) -> int:
        return int(self.actions.shape[2])

    def subset(self, rows: np.ndarray) -> DemoSet:
        """The rows ``rows`` (an index array or boolean mask) as a new set."""
        return DemoSet(
            frames=self.frames[rows],
            goals=self.goals[rows],
            actions=self.actions[rows],
            joint_positions=self.joint_positions[rows],
            episode=self.episode[rows],
            metadata=dict(self.metadata),
        )

    def split_by_episode(self, held_out_fraction: float, seed: int) -> tuple[DemoSet, DemoSet]:
        """``(train, held_out)`` with whole episodes on each side, chosen under ``seed``."""
        if not 0.0 < held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
        episodes = np.unique(self.episode)
        if episodes.size < 2:
            raise ValueError(f"need >= 2 episodes to hold some out, got {episodes.size}")
        rng = np.random.default_rng(seed)
        n_out = max(1, round(held_out_fraction * episodes.size))
        held = rng.choice(episodes, size=n_out, replace=False)
        mask = np.isin(self.episode, held)
        return self.subset(~mask), self.subset(mask)


def load_demos(path: str | Path) -> DemoSet:
    """Read and validate a demonstrations ``.npz``.

    Raises:
        FileNotFoundError: No such file.
        ValueError: A required array is missing or ill-shaped (the message names it).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"demonstrations file not found: {p}")
    with np.load(p, allow_pickle=False) as data:
        missing = [k for k in REQUIRED_KEYS if k not in data.files]
        if missing:
            raise ValueError(f"{p}: missing arrays {missing} (has {sorted(data.files)})")
        arrays = {k: data[k] for k in data.files}
    meta = {k: _plain(v) for k, v in arrays.items() if k not in REQUIRED_KEYS}
    return DemoSet(
        frames=arrays["frames"],
        goals=arrays["goals"].astype(str),
        actions=arrays["actions"].astype(np.float32),
        joint_positions=arrays["joint_positions"].astype(np.float32),
        episode=arrays["episode"].astype(np.int64),
        metadata=meta,
    )


def save_demos(demos: DemoSet, path: str | Path) -> Path:
    """Write ``demos`` in the format ``load_demos`` reads (metadata as extra arrays)."""
    p = Path(path)
    extra = {k: np.asarray(v) for k, v in demos.metadata.items()}
    np.savez_compressed(
        p,
        frames=demos.frames,
        goals=demos.goals.astype(str),
        actions=demos.actions,
        joint_positions=demos.joint_positions,
        episode=demos.episode,
        **extra,
    )
    return p


def _plain(v: np.ndarray) -> Any:
    return v.item() if v.ndim == 0 else v.tolist()


def synthetic_targets(colour_xy: np.ndarray) -> np.ndarray:
    """Joint targets ``[..., 8]`` (7 joints rad + gripper m) for the named square's centre ``[..., 2]``.

    The centre is in [0, 1] image units. Smooth, non-linear and different per joint, inside the Panda's
    joint ranges, like IK to a point on a table.
    """
    x, y = colour_xy[..., 0], colour_xy[..., 1]
    u, v = 2.0 * x - 1.0, 2.0 * y - 1.0
    joints = np.stack(
        [
            0.9 * u,
            0.2 + 0.5 * v,
            0.3 * u * v,
            -2.2 + 0.6 * v - 0.2 * u * u,
            0.4 * np.sin(1.5 * u),
            1.9 + 0.3 * v,
            0.785 + 0.5 * u,
            np.full_like(u, 0.04),
        ],
        axis=-1,
    )
    return joints.astype(np.float32)


def make_synthetic_demos(
    episodes: int, seed: int, size: int = 256, chunk_size: int = 16, frames_per_episode: int = 2
) -> DemoSet:
    """A stand-in for the simulator's demonstrations, in the same format.

    Each episode places the three squares at random non-overlapping positions and names one of them; its
    frames differ by a small jitter of the squares (standing in for the arm moving through the view). The
    action chunk holds the named square's joint targets for ``chunk_size`` steps.

    Args:
        episodes: Number of episodes (>= 1).
        seed: Seed of everything drawn.
        size: Image side in pixels.
        chunk_size: Steps per action chunk.
        frames_per_episode: Rows per episode.
    """
    if episodes < 1 or frames_per_episode < 1 or chunk_size < 1 or size < 32:
        raise ValueError(
            f"need episodes >= 1, frames_per_episode >= 1, chunk_size >= 1, size >= 32; got {episodes}, "
            f"{frames_per_episode}, {chunk_size}, {size}"
        )
    rng = np.random.default_rng(seed)
    names = list(SYNTHETIC_COLOURS)
    half = max(3, size // 20)  # square half-side (pixels): ~10 % of the image, like a cube seen from above
    rows: dict[str, list[Any]] = {k: [] for k in REQUIRED_KEYS}
    for ep in range(episodes):
        centres = _non_overlapping(rng, len(names), margin=0.12, min_dist=0.25)
        target = int(rng.integers(len(names)))
        goal = f"touch the {names[target]} cube"
        for _ in range(frames_per_episode):
            jitter = rng.normal(0.0, 0.005, size=centres.shape)
            img = np.empty((size, size, 3), np.uint8)
            img[:] = _BACKGROUND
            for (cx, cy), name in zip(centres + jitter, names, strict=True):
                px, py = round(cx * (size - 1)), round(cy * (size - 1))
                img[max(0, py - half) : py + half, max(0, px - half) : px + half] = SYNTHETIC_COLOURS[name]
            joints = synthetic_targets(centres[target])
            rows["frames"].append(img)
            rows["goals"].append(goal)
            rows["actions"].append(np.repeat(joints[None], chunk_size, axis=0))
            rows["joint_positions"].append(rng.normal(0.0, 0.1, size=joints.shape).astype(np.float32))
            rows["episode"].append(ep)
    return DemoSet(
        frames=np.stack(rows["frames"]),
        goals=np.asarray(rows["goals"], dtype=str),
        actions=np.stack(rows["actions"]).astype(np.float32),
        joint_positions=np.stack(rows["joint_positions"]).astype(np.float32),
        episode=np.asarray(rows["episode"], dtype=np.int64),
        metadata={"action_rate_hz": 15.0, "source": "synthetic", "seed": seed},
    )


def _non_overlapping(rng: np.random.Generator, n: int, margin: float, min_dist: float) -> np.ndarray:
    """``n`` points in ``[margin, 1 - margin]^2``, pairwise >= ``min_dist`` apart (rejection sampling)."""
    for _ in range(1000):
        pts = rng.uniform(margin, 1.0 - margin, size=(n, 2))
        d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(n)
        if d.min() >= min_dist:
            return pts
    raise RuntimeError(f"could not place {n} points {min_dist} apart")  # unreachable for the sizes used
