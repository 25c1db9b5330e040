"""A recorded closed-loop episode as camera frames with the planned path drawn in, written as a GIF.

Frames are re-rendered offline from the sim node's episode record (``cosmos_ros.sim.records``), not taken
from the ``image_raw`` topic: ``PandaSim.reset(seed)`` rebuilds the seeded scene, then for every
``every_ticks``-th tick the arm is set to the joint positions measured at that tick and the fixed camera
renders it. Rendering is deterministic (pybullet's CPU renderer), so no image transport is needed and the
frames do not depend on the camera rate the planner ran at. What a re-render cannot show: the cubes are drawn
where the episode placed them (the record does not hold their poses, so a cube the arm pushed is not shown
moving; at rest they settle by about 10 µm under gravity, which may change an edge pixel), and the two fingers
are drawn at half the measured opening each.

Overlay, projected with the camera's own view and projection (``cosmos_ros.sim.camera_model``):

- the current plan (the last plan the safety node took before the frame's tick) as the path of the grasp
  point through its joint targets (forward kinematics of each step's 7 arm-joint targets on the same
  simulated Panda), yellow, its last target circled;
- the grasp point's trail over the last ``trail_s`` seconds, magenta;
- seed, goal, episode time, and the outcome on the held last frame.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cosmos_ros.sim.camera_model import project
from cosmos_ros.sim.config import SimConfig
from cosmos_ros.sim.scene import PandaSim
from cosmos_ros.sim.switch_metrics import PlanSample

PLAN_RGB = (255, 220, 0)
TRAIL_RGB = (255, 0, 255)
TEXT_RGB = (255, 255, 255)
SUCCESS_RGB = (60, 230, 60)
FAIL_RGB = (255, 80, 80)


@dataclass(frozen=True)
class VideoConfig:
    """How an episode becomes frames: every ``every_ticks``-th control tick, ``size`` x ``size`` pixels."""

    every_ticks: int = 10
    size: int = 256
    trail_s: float = 1.0
    hold_last_s: float = 1.5
    overlay: bool = True  # False: the bare re-rendered camera images (tests compare them with live renders)

    def __post_init__(self) -> None:
        if (
            isinstance(self.every_ticks, bool)
            or not isinstance(self.every_ticks, int)
            or self.every_ticks < 1
        ):
            raise ValueError(f"every_ticks must be an integer >= 1, got {self.every_ticks!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 32 <= self.size <= 1024:
            raise ValueError(f"size must be an integer in [32, 1024], got {self.size!r}")
        if not self.trail_s >= 0:
            raise ValueError(f"trail_s must be >= 0, got {self.trail_s}")
        if not self.hold_last_s >= 0:
            raise ValueError(f"hold_last_s must be >= 0, got {self.hold_last_s}")


@dataclass(frozen=True)
class EpisodePlan:
    """A plan the safety node streamed in an episode: from tick ``switch_tick`` on, arm targets ``[T, 7]``
    meant for episode times ``times_s`` (s since the episode's tick 0)."""

    plan_id: int
    switch_tick: int
    times_s: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != 7 or len(self.values) < 1:
            raise ValueError(f"plan {self.plan_id}: values must be [T >= 1, 7], got {self.values.shape}")
        if self.times_s.shape != (len(self.values),):
            raise ValueError(f"plan {self.plan_id}: times {self.times_s.shape} vs values {self.values.shape}")


@dataclass
class EpisodeFrames:
    """Rendered frames (uint8 ``[H, W, 3]``), the tick each shows, and each frame's display time (ms)."""

    frames: list[np.ndarray] = field(default_factory=list)
    ticks: list[int] = field(default_factory=list)
    durations_ms: list[int] = field(default_factory=list)


def plans_for_episode(
    samples: Sequence[PlanSample],
    switch_times: Mapping[int, float],
    start_s: float,
    tick_s: float,
    n_ticks: int,
) -> list[EpisodePlan]:
    """The streamed plans whose switch falls inside one episode (sim times in s), as record tick indices.

    ``switch_times`` maps plan id -> sim time at which the safety node took it (plans it rejected are not in
    it); episode tick ``k`` is at ``start_s + k * tick_s``.
    """
    if tick_s <= 0:
        raise ValueError(f"tick_s must be > 0, got {tick_s}")
    out = []
    for sample in samples:
        t = switch_times.get(sample.plan_id)
        if t is None:
            continue
        tick = round((t - start_s) / tick_s)
        if 0 <= tick < n_ticks:
            values = np.asarray(sample.values, dtype=np.float64)
            times = np.asarray(sample.times_s, dtype=np.float64) - start_s
            out.append(EpisodePlan(sample.plan_id, tick, times, values))
    return sorted(out, key=lambda p: (p.switch_tick, p.plan_id))


def grasp_points(sim: PandaSim, joints: np.ndarray, gripper: float) -> np.ndarray:
    """Grasp point (m, world) for each row of arm-joint positions ``[N, 7]`` (forward kinematics)."""
    out = np.empty((len(joints), 3))
    for i, q in enumerate(np.asarray(joints, dtype=np.float64)):
        sim.set_joint_positions(np.concatenate([q, [gripper]]))
        out[i] = sim.grasp_position()
    return out


def frame_ticks(n_ticks: int, every_ticks: int) -> list[int]:
    """Ticks to render: every ``every_ticks``-th one and always the last (the outcome)."""
    if n_ticks < 1:
        return []
    ticks = list(range(0, n_ticks, every_ticks))
    if ticks[-1] != n_ticks - 1:
        ticks.append(n_ticks - 1)
    return ticks


def render_episode(
    record: Mapping[str, np.ndarray],
    plans: Sequence[EpisodePlan],
    sim_config: SimConfig,
    video: VideoConfig | None = None,
) -> EpisodeFrames:
    """Re-render a recorded episode (``load_record`` arrays) with the plan and trail overlay."""
    video = video or VideoConfig()
    config = sim_config.with_camera_size(video.size, video.size)
    measured = np.asarray(record["measured"], dtype=np.float64)
    tick_s = float(record["tick_s"])
    seed = int(record["seed"])
    sim = PandaSim(config)
    try:
        sim.reset(seed)
        gripper = float(measured[0, 7]) if len(measured) else 0.0
        plan_paths = [grasp_points(sim, p.values, gripper) for p in plans]
        plan_uv = [project(path, config.camera)[0] for path in plan_paths]
        ticks = frame_ticks(len(measured), video.every_ticks)
        trail: list[tuple[int, np.ndarray]] = []
        out = EpisodeFrames()
        for k in ticks:
            sim.set_joint_positions(measured[k])
            trail.append((k, sim.grasp_position()))
            trail = [(t, p) for t, p in trail if (k - t) * tick_s <= video.trail_s + 1e-9]
            image = sim.render()
            current = _current_plan(plans, k)
            path_uv = plan_uv[current] if current is not None else None
            trail_uv = project(np.array([p for _, p in trail]), config.camera)[0]
            last = k == ticks[-1]
            if video.overlay:
                image = _overlay(image, record, k * tick_s, path_uv, trail_uv, outcome=last)
            out.frames.append(image)
            out.ticks.append(k)
        # Real time: a frame shows until the next one's tick; the outcome frame is held.
        out.durations_ms = [round(1000 * (b - a) * tick_s) for a, b in itertools.pairwise(ticks)]
        if ticks:
            out.durations_ms.append(round(1000 * max(video.hold_last_s, video.every_ticks * tick_s)))
        return out
    finally:
        sim.close()


def _current_plan(plans: Sequence[EpisodePlan], tick: int) -> int | None:
    current = None
    for i, plan in enumerate(plans):
        if plan.switch_tick <= tick:
            current = i
    return current


def _overlay(
    image: np.ndarray,
    record: Mapping[str, np.ndarray],
    t_s: float,
    path_uv: np.ndarray | None,
    trail_uv: np.ndarray,
    outcome: bool,
) -> np.ndarray:
    from PIL import Image, ImageDraw

    h = image.shape[0]
    # Dark bands keep the text readable on the white background and the grey arm.
    shaded = image.copy()
    for rows in (slice(0, 28), slice(h - 17, h)):
        shaded[rows] = (shaded[rows] * 0.35).astype(np.uint8)
    img = Image.fromarray(shaded)
    draw = ImageDraw.Draw(img)
    r = max(2, h // 64)
    trail = [tuple(p) for p in trail_uv if np.all(np.isfinite(p))]
    if len(trail) >= 2:
        draw.line(trail, fill=TRAIL_RGB, width=max(1, r // 2))
    if path_uv is not None:
        path = [tuple(p) for p in path_uv if np.all(np.isfinite(p))]
        if len(path) >= 2:
            draw.line(path, fill=PLAN_RGB, width=max(1, r // 2))
        if path:
            u, v = path[-1]
            draw.ellipse((u - r, v - r, u + r, v + r), outline=PLAN_RGB, width=max(1, r // 2))
    seed, goal = int(record["seed"]), str(record["goal"])
    draw.text((4, 3), f"seed {seed}: {goal}", fill=TEXT_RGB)
    draw.text((4, 15), f"t = {t_s:5.2f} s   yellow: plan, magenta: trail", fill=TEXT_RGB)
    if outcome:
        t_success = float(record["time_to_success_s"])
        text, colour = (
            (f"SUCCESS at {t_success:.2f} s", SUCCESS_RGB) if t_success >= 0 else ("no success", FAIL_RGB)
        )
        draw.text((4, h - 14), text, fill=colour)
    return np.asarray(img)


def write_gif(frames: EpisodeFrames, path: str | Path) -> Path:
    """Write the frames as a looping GIF (Pillow; each frame with its own adaptive palette)."""
    from PIL import Image

    if not frames.frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames.frames]
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=list(frames.durations_ms),
        loop=0,
        optimize=True,
        disposal=1,
    )
    return path
