"""The closed-loop demo's media: camera projection, offline re-rendering of a record, plans per episode, and
one short end-to-end run with the scripted expert through the real nodes that writes a GIF and a plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cosmos_ros.sim.camera_model import camera_matrices, project
from cosmos_ros.sim.config import JOINT_NAMES, load_sim_config
from cosmos_ros.sim.episode_video import (
    EpisodePlan,
    VideoConfig,
    frame_ticks,
    plans_for_episode,
    render_episode,
    write_gif,
)
from cosmos_ros.sim.records import load_record
from cosmos_ros.sim.switch_metrics import PlanSample

pybullet = pytest.importorskip(
    "pybullet", reason="the closed-loop simulation needs pybullet (requirements.txt)"
)

from cosmos_ros.sim.scene import PandaSim  # noqa: E402  (after the importorskip)

COLOUR_CHANNEL = {"red": 0, "green": 1, "blue": 2}


@pytest.fixture(scope="module")
def config():
    return load_sim_config().with_camera_size(128, 128)


def test_camera_matrices_equal_pybullets(config):
    cam = config.camera
    view, proj = camera_matrices(cam)
    # pybullet returns column-major 4x4 matrices as 16 floats (float32 precision).
    pb_view = np.array(pybullet.computeViewMatrix(cam.eye, cam.target, [0, 0, 1])).reshape(4, 4).T
    pb_proj = (
        np.array(pybullet.computeProjectionMatrixFOV(cam.fov_deg, cam.width / cam.height, cam.near, cam.far))
        .reshape(4, 4)
        .T
    )
    np.testing.assert_allclose(view, pb_view, atol=1e-6)
    np.testing.assert_allclose(proj, pb_proj, atol=1e-6)


def test_projection_of_known_points(config):
    cam = config.camera
    uv, front = project(np.array([cam.target, cam.eye + np.array([0.5, 0.0, 0.0])]), cam)
    np.testing.assert_allclose(uv[0], [cam.width / 2, cam.height / 2], atol=1e-9)  # target: image centre
    assert front[0] and not front[1] and np.all(np.isnan(uv[1]))  # behind the camera: no pixel
    # The pinhole intrinsics the sim publishes in camera_info describe the same projection.
    sim = PandaSim(config)
    try:
        fx, fy, cx, cy = sim.camera_intrinsics()
        point = np.array([0.5, 0.2, 0.1])
        view, _ = camera_matrices(cam)
        x, y, z = (view @ np.append(point, 1.0))[:3]  # OpenGL camera frame: looking along -z, y up
        np.testing.assert_allclose(project(point[None], cam)[0][0], [cx + fx * x / -z, cy - fy * y / -z])

        # A known point in the rendered scene: each cube's centre lands on that cube's pixels.
        episode = sim.reset(2)
        image = sim.render().astype(int)
        for colour in episode.cubes:
            ((u, v),), _ = project(sim.cube_position(colour)[None], cam)
            c = COLOUR_CHANNEL[colour]
            others = [i for i in range(3) if i != c]
            mask = image[:, :, c] - image[:, :, others].max(axis=2) > 60
            rows, cols = np.nonzero(mask)
            assert mask[int(v), int(u)], (colour, u, v)
            # Perspective shows the top face more than the bottom: the centroid is near, not at, the centre.
            assert math.hypot(cols.mean() + 0.5 - u, rows.mean() + 0.5 - v) < 1.5, (colour, u, v)
    finally:
        sim.close()


def _live_episode(config, seed: int, ticks: int) -> tuple[dict, dict[int, np.ndarray]]:
    """Drive the arm with the PIDs, keep measured joints per tick and live renders of a few ticks."""
    sim = PandaSim(config)
    try:
        episode = sim.reset(seed)
        target = sim.joint_positions() + np.array([0.25, 0.2, -0.2, 0.3, 0.2, -0.2, 0.3, 0.0])
        measured, setpoints, live = [], [], {}
        for k in range(ticks):
            measured.append(sim.joint_positions())
            setpoints.append(target)
            if k % 10 == 0:
                live[k] = sim.render()
            assert sim.command(JOINT_NAMES, target) is None
            sim.tick()
    finally:
        sim.close()
    record = {
        "seed": np.int64(seed),
        "goal": np.array(episode.goal_text),
        "tick_s": np.float64(config.tick_s),
        "joint_names": np.array(JOINT_NAMES),
        "setpoints": np.array(setpoints),
        "measured": np.array(measured),
        "time_to_success_s": np.float64(-1.0),
        "switch_ticks": np.array([0], dtype=np.int64),
    }
    return record, live


def test_rerendered_frames_equal_live_renders_at_the_same_pose(config):
    record, live = _live_episode(config, seed=5, ticks=41)
    video = VideoConfig(every_ticks=10, size=config.camera.width, overlay=False)
    frames = render_episode(record, [], config, video)
    assert frames.ticks == [0, 10, 20, 30, 40] and frames.durations_ms[:-1] == [100] * 4
    assert frames.durations_ms[-1] == 1500  # the outcome frame is held
    n_pixels = config.camera.width * config.camera.height
    for k, image in zip(frames.ticks, frames.frames, strict=True):
        # Not bit-exact: live, the cubes have settled ~10 µm under gravity and the fingers differ by µm;
        # the record holds neither. A handful of edge pixels may differ, no more.
        differing = int(np.any(image != live[k], axis=2).sum())
        assert differing <= 0.001 * n_pixels, (k, differing)
    # The comparison can fail: the pose of another tick differs in far more pixels.
    assert int(np.any(frames.frames[0] != live[40], axis=2).sum()) > 0.01 * n_pixels


def test_overlay_draws_the_plan_at_its_projected_target(config):
    record, _ = _live_episode(config, seed=5, ticks=11)
    sim = PandaSim(config)
    try:
        sim.reset(5)
        sim.set_joint_positions(record["measured"][0])
        grasp = sim.grasp_position()  # a plan that holds the start pose targets this point
    finally:
        sim.close()
    plan = EpisodePlan(7, 0, np.arange(3) / 15.0, np.repeat(record["measured"][:1, :7], 3, axis=0))
    frames = render_episode(record, [plan], config, VideoConfig(size=config.camera.width))
    ((u, v),), _ = project(grasp[None], config.camera)
    r = max(2, config.camera.width // 64) + 2
    patch = frames.frames[0][int(v) - r : int(v) + r + 1, int(u) - r : int(u) + r + 1].astype(int)
    yellow = (patch[:, :, 0] > 200) & (patch[:, :, 1] > 180) & (patch[:, :, 2] < 80)
    assert yellow.sum() >= 4, patch
    bare = render_episode(record, [], config, VideoConfig(size=config.camera.width))
    assert not np.array_equal(bare.frames[0], frames.frames[0])


def test_plans_are_assigned_to_their_episode_by_switch_time():
    def sample(plan_id: int, t0: float) -> PlanSample:
        return PlanSample(plan_id, "g", t0 + np.arange(4) / 15.0, np.full((4, 7), float(plan_id)))

    samples = [sample(1, 0.5), sample(2, 1.5), sample(3, 2.5), sample(4, 3.5), sample(5, 9.0)]
    switch_times = {1: 0.5, 2: 1.52, 4: 3.5, 5: 9.0}  # 3 was rejected; 5 belongs to a later episode
    plans = plans_for_episode(samples, switch_times, start_s=1.0, tick_s=0.01, n_ticks=300)
    assert [(p.plan_id, p.switch_tick) for p in plans] == [(2, 52), (4, 250)]
    np.testing.assert_allclose(plans[0].times_s, 0.5 + np.arange(4) / 15.0)
    with pytest.raises(ValueError, match="tick_s"):
        plans_for_episode(samples, switch_times, 1.0, 0.0, 10)


def test_frame_ticks_and_video_config_validation():
    assert frame_ticks(0, 10) == [] and frame_ticks(1, 10) == [0]
    assert frame_ticks(25, 10) == [0, 10, 20, 24] and frame_ticks(21, 10) == [0, 10, 20]
    for bad in ({"every_ticks": 0}, {"size": 8}, {"trail_s": -1.0}, {"hold_last_s": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            VideoConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="values"):
        EpisodePlan(1, 0, np.zeros(2), np.zeros((2, 6)))


def test_write_gif_keeps_every_frame(tmp_path: Path, config):
    from PIL import Image

    record, _ = _live_episode(config, seed=5, ticks=21)
    frames = render_episode(record, [], config, VideoConfig(every_ticks=5, size=64))
    path = write_gif(frames, tmp_path / "e.gif")
    with Image.open(path) as gif:
        assert (gif.n_frames, gif.size) == (5, (64, 64))


@pytest.mark.ros
def test_demo_with_the_expert_writes_a_gif_and_a_plot(tmp_path: Path):
    """End to end: sim + expert planner + safety node over DDS, then the GIF and the setpoint plot."""
    from PIL import Image

    from cosmos_ros.tools.demo_closed_loop import main

    out = tmp_path / "demo"
    code = main(
        ["--row", "expert", "--first-seed", "2", "--episodes", "1", "--out", str(out), "--size", "96"]
    )
    assert code == 0
    summary = json.loads((out / "closed_loop_summary.json").read_text())
    assert summary["episodes"] == 1 and summary["successes"] == 1 and summary["violations"] == 0
    (episode,) = summary["per_episode"]
    assert episode["plans_drawn"] >= 1
    record = load_record(out / "work" / "records_expert" / "episode_00000002.npz")
    expected = len(frame_ticks(len(record["measured"]), 10))
    with Image.open(out / "episode_2.gif") as gif:
        assert (gif.n_frames, gif.size) == (expected, (96, 96)) and episode["frames"] == expected
    with Image.open(out / "episode_2_setpoints.png") as png:
        assert png.size[0] > 400 and png.size[1] > 300


def test_set_joint_positions_refuses_bad_poses(config):
    sim = PandaSim(config)
    try:
        sim.reset(1)
        start = sim.joint_positions()
        for bad in (start[:7], np.append(start[:7], math.nan)):
            with pytest.raises(ValueError, match="finite values"):
                sim.set_joint_positions(bad)
        np.testing.assert_array_equal(sim.joint_positions(), start)  # nothing was moved
        sim.set_joint_positions(start + 0.1 * np.array([1, 1, 1, 1, 1, 1, 1, 0]))
        np.testing.assert_allclose(sim.joint_positions(), start + 0.1 * np.array([1, 1, 1, 1, 1, 1, 1, 0]))
    finally:
        sim.close()
