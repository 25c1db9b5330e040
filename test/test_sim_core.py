"""The closed-loop simulation's pure core: determinism, PID tracking, refusals, task, demos (no ROS)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosmos_ros.sim.config import JOINT_NAMES, SimConfigError, load_sim_config, sim_config_from_dict
from cosmos_ros.sim.controllers import PidArray, SetpointGate
from cosmos_ros.sim.demos import DemoConfig, generate_demos
from cosmos_ros.sim.scene import PandaSim
from cosmos_ros.sim.task import goal_text, parse_goal, sample_episode

pytest.importorskip("pybullet", reason="the closed-loop simulation needs pybullet (requirements.txt)")


@pytest.fixture(scope="module")
def config():
    return load_sim_config().with_camera_size(64, 64)


@pytest.fixture()
def sim(config):
    s = PandaSim(config)
    yield s
    s.close()


def _run(sim: PandaSim, seed: int, ticks: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    sim.reset(seed)
    target = sim.joint_positions() + np.array([offset] * 7 + [0.0])
    traj = []
    for _ in range(ticks):
        assert sim.command(JOINT_NAMES, target) is None
        sim.tick()
        traj.append(sim.joint_positions())
    return np.array(traj), sim.render()


def test_same_seed_same_world_bit_for_bit(config):
    a, b = PandaSim(config), PandaSim(config)
    try:
        traj_a, img_a = _run(a, 7, 30, 0.1)
        _run(b, 3, 10, -0.1)  # a different episode first: reset must not carry state over
        traj_b, img_b = _run(b, 7, 30, 0.1)
    finally:
        a.close()
        b.close()
    np.testing.assert_array_equal(traj_a, traj_b)
    np.testing.assert_array_equal(img_a, img_b)
    assert img_a.shape == (64, 64, 3) and img_a.dtype == np.uint8


def test_reset_restores_the_seeded_start(sim):
    first = sim.reset(11)
    start = sim.joint_positions()
    for _ in range(20):
        sim.command(JOINT_NAMES, start + np.array([0.2] * 7 + [0.0]))
        sim.tick()
    assert np.max(np.abs(sim.joint_positions() - start)) > 0.05
    again = sim.reset(11)
    assert again == first and sim.time_s == 0.0 and sim.success_time_s is None
    np.testing.assert_allclose(sim.joint_positions(), start, atol=1e-9)
    np.testing.assert_allclose(start, first.start_joints, atol=1e-9)


def test_pid_tracks_a_step_within_1_cm_rad_in_half_a_second(sim):
    """A 0.2 rad step on every arm joint (and 4 cm on the gripper), through the dynamics, not a teleport."""
    sim.reset(0)
    start = sim.joint_positions()
    target = start + np.array([0.2] * 7 + [-0.04])
    errors = []
    for _ in range(50):  # 0.5 s
        sim.command(JOINT_NAMES, target)
        sim.tick()
        errors.append(np.abs(sim.joint_positions() - target))
    errors_arr = np.array(errors)
    # Not a teleport: after one 10 ms tick the arm has covered well under half the step.
    assert np.all(errors_arr[0, :7] > 0.1), errors_arr[0]
    assert np.all(errors_arr[-1, :7] < 0.01), errors_arr[-1]
    assert errors_arr[-1, 7] < 0.002, errors_arr[-1]


def test_command_timeout_holds_the_measured_position(sim, config):
    sim.reset(0)
    start = sim.joint_positions()
    sim.command(JOINT_NAMES, start + np.array([0.3] * 7 + [0.0]))
    ticks = math.ceil(config.cmd_timeout_s / config.tick_s) + 1
    for _ in range(ticks):
        sim.tick()
    assert sim.gate is not None and sim.gate.timeouts == len(JOINT_NAMES)
    assert np.all(sim.gate.holding)
    held = sim.joint_positions()
    for _ in range(50):
        sim.tick()
    assert np.max(np.abs(sim.joint_positions()[:7] - held[:7])) < 0.01


def test_timed_out_joint_holds_the_position_measured_then_not_the_old_setpoint():
    gate = SetpointGate(["a", "b"], [-1.0, -1.0], [1.0, 1.0], cmd_timeout_s=0.1)
    gate.reset([0.0, 0.0])
    assert gate.command(["a"], [0.8], now=0.0) is None
    assert gate.command(["b"], [0.5], now=0.05) is None
    np.testing.assert_array_equal(gate.setpoints([0.3, 0.2], now=0.1), [0.8, 0.5])
    # a timed out at 0.1 s: it holds where it was measured (0.4), b is still commanded.
    np.testing.assert_array_equal(gate.setpoints([0.4, 0.3], now=0.11), [0.4, 0.5])
    np.testing.assert_array_equal(gate.setpoints([0.45, 0.3], now=0.12), [0.4, 0.5])
    assert gate.timeouts == 1 and gate.holding.tolist() == [True, False]


@pytest.mark.parametrize(
    ("names", "values", "reason"),
    [
        (["panda_joint9"], [0.0], "unknown_joint"),
        (["panda_joint1"], [float("nan")], "non_finite"),
        (["panda_joint1"], [float("inf")], "non_finite"),
        (["panda_joint4"], [0.5], "out_of_range"),
        (["gripper"], [0.1], "out_of_range"),
        (["panda_joint1", "panda_joint1"], [0.0, 0.0], "malformed"),
        (["panda_joint1"], [0.0, 1.0], "malformed"),
    ],
)
def test_bad_setpoints_are_refused_counted_and_move_nothing(sim, names, values, reason):
    sim.reset(0)
    start = sim.joint_positions()
    refusal = sim.command(names, values)
    assert refusal is not None and refusal.reason == reason, refusal
    assert sim.gate is not None and sim.gate.refusals[reason] == 1
    for _ in range(10):
        sim.tick()
    np.testing.assert_allclose(sim.joint_positions(), start, atol=1e-6)


def test_a_bad_value_refuses_the_whole_command():
    gate = SetpointGate(["a", "b"], [-1.0, -1.0], [1.0, 1.0], 0.1)
    gate.reset([0.0, 0.0])
    assert gate.command(["a", "b"], [0.5, float("nan")], now=0.0) is not None
    np.testing.assert_array_equal(gate.setpoints([0.0, 0.0], now=0.0), [0.0, 0.0])
    assert gate.command(["a", "b"], [0.5, -0.5], now=0.0) is None
    np.testing.assert_array_equal(gate.setpoints([0.0, 0.0], now=0.05), [0.5, -0.5])


def test_pid_anti_windup_and_effort_limit():
    from cosmos_ros.sim.config import PidGains

    pid = PidArray([PidGains(kp=100.0, ki=100.0, kd=0.0, i_clamp=10.0)], [5.0])
    for _ in range(1000):  # far from the setpoint: saturated the whole time
        out = pid.compute(np.array([1.0]), np.array([0.0]), np.array([0.0]), 0.01)
        assert abs(out[0]) <= 5.0
    assert pid.integral[0] == 0.0  # frozen while saturated in the error's direction
    # Without the freeze the integral would be at its clamp and the output stay saturated near the setpoint.
    near = pid.compute(np.array([1.0]), np.array([0.99]), np.array([0.0]), 0.01)
    assert abs(near[0]) < 5.0


def test_success_is_the_grasp_point_near_the_named_cube(sim, config):
    episode = sim.reset(5)
    assert not sim.is_success()
    cube = np.array(episode.cubes[episode.goal_colour][0])
    assert sim.goal_distance() == pytest.approx(float(np.linalg.norm(sim.grasp_position() - cube)), abs=1e-6)
    from cosmos_ros.sim.demos import make_expert

    expert = make_expert(sim)
    try:
        target = expert.target_for(cube)
    finally:
        expert.close()
    for _ in range(300):
        sim.command(JOINT_NAMES, target)
        sim.tick()
    assert sim.is_success() and sim.success_time_s is not None
    assert sim.goal_distance() <= config.task.success_distance_m


def test_episodes_are_seeded_and_name_one_cube(config):
    a, b = sample_episode(3, config.task), sample_episode(3, config.task)
    assert a == b
    colours = {sample_episode(s, config.task).goal_colour for s in range(30)}
    assert colours == set(config.task.colours)
    for s in range(30):
        cubes = [np.array(p[:2]) for p, _ in sample_episode(s, config.task).cubes.values()]
        gaps = [np.linalg.norm(x - y) for i, x in enumerate(cubes) for y in cubes[i + 1 :]]
        assert min(gaps) >= config.task.min_cube_separation_m
    assert parse_goal(goal_text("red")) == "red" and parse_goal("Touch the BLUE cube ") == "blue"
    assert parse_goal("pick up the red cube") is None


def test_config_errors_name_the_key():
    import yaml

    from cosmos_ros.sim.config import default_sim_config_path

    data = yaml.safe_load(default_sim_config_path().read_text())
    data["pid"]["panda_joint3"]["kp"] = -1.0
    with pytest.raises(SimConfigError, match="kp must be >= 0"):
        sim_config_from_dict(data)
    data = yaml.safe_load(default_sim_config_path().read_text())
    del data["tick_s"]
    with pytest.raises(SimConfigError, match="tick_s"):
        sim_config_from_dict(data)


def test_demonstrations_have_the_documented_shapes_and_are_deterministic(config):
    demo = DemoConfig(episodes=2, seed=4, chunk=5, decisions_per_episode=2)
    a = generate_demos(config, demo)
    b = generate_demos(config, demo)
    n = 4
    assert a["frames"].shape == (n, 64, 64, 3) and a["frames"].dtype == np.uint8
    assert a["actions"].shape == (n, 5, 8) and a["actions"].dtype == np.float32
    assert a["joint_positions"].shape == (n, 8) and a["joint_positions"].dtype == np.float32
    assert a["goals"].shape == (n,) and a["episode"].tolist() == [4, 4, 5, 5]
    assert list(a["joint_names"]) == list(JOINT_NAMES) and float(a["step_period"]) == pytest.approx(1 / 15)
    assert a["image_size"].tolist() == [64, 64] and bool(np.all(a["expert_success"]))
    # hold mode: the chunk is the IK target repeated, the same at every decision point of an episode.
    np.testing.assert_array_equal(a["actions"][0], np.repeat(a["actions"][0][:1], 5, axis=0))
    np.testing.assert_array_equal(a["actions"][0], a["actions"][1])
    # Decision points at different arm poses.
    assert np.max(np.abs(a["joint_positions"][0] - a["joint_positions"][1])) > 0.01
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_demonstrations_from_several_workers_equal_one_process(config):
    """make_sim_demos --workers: each episode depends on its seed only, so split ranges joined in order give
    the single-process arrays; joining parts that share a seed or differ in image size is refused."""
    from dataclasses import replace

    from cosmos_ros.sim.demos import concat_demo_arrays
    from cosmos_ros.tools.make_sim_demos import _split

    demo = DemoConfig(episodes=3, seed=7, chunk=4, decisions_per_episode=2)
    parts = _split(demo, 2)
    assert [(p.seed, p.episodes) for p in parts] == [(7, 2), (9, 1)]
    whole = generate_demos(config, demo)
    joined = concat_demo_arrays([generate_demos(config, p) for p in parts])
    assert set(joined) == set(whole)
    for key in whole:
        np.testing.assert_array_equal(joined[key], whole[key])
    with pytest.raises(ValueError, match="share episode seeds"):
        concat_demo_arrays([whole, whole])
    other = generate_demos(config.with_camera_size(32, 32), replace(demo, seed=20, episodes=1))
    with pytest.raises(ValueError, match="image_size"):
        concat_demo_arrays([whole, other])


def test_kinematic_frames_show_the_experts_pose_without_running_physics(config):
    """--frame-mode kinematic: same episodes, goals and chunks as the simulated expert; the first frame (start
    pose) is identical, later frames show the arm where the expert commanded it (near the simulated pose, not
    equal: the PIDs lag); mixed sets join and say so."""
    from dataclasses import replace

    from cosmos_ros.sim.demos import concat_demo_arrays

    demo = DemoConfig(episodes=2, seed=4, chunk=5, decisions_per_episode=3)
    dyn = generate_demos(config, demo)
    kin = generate_demos(config, replace(demo, frame_mode="kinematic"))
    for key in ("goals", "actions", "episode"):
        np.testing.assert_array_equal(kin[key], dyn[key])
    np.testing.assert_array_equal(kin["frames"][[0, 3]], dyn["frames"][[0, 3]])
    assert not np.array_equal(kin["frames"][2], kin["frames"][0])  # the arm moved in the picture
    lag = np.abs(kin["joint_positions"] - dyn["joint_positions"])[:, :7].max()
    assert 0.0 < lag < 0.2, lag
    assert not kin["expert_success"].any() and str(kin["frame_mode"]) == "kinematic"
    joined = concat_demo_arrays([dyn, generate_demos(config, replace(demo, seed=10, frame_mode="kinematic"))])
    assert str(joined["frame_mode"]) == "dynamic+kinematic"
    with pytest.raises(ValueError, match="frame_mode"):
        DemoConfig(episodes=1, seed=0, frame_mode="teleport")
