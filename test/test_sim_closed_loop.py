"""The closed loop over DDS: the sim node, the real safety node and a planner (expert or model) in lockstep.

Checks: the sim node publishes what it promises (clock, joint states by name, camera + info, latched goal,
episode state) and refuses and counts bad setpoints on the safety node's adapter topics; the scripted expert
streamed through the real safety node succeeds, with no limit of config/limits/arm7_joints.yaml violated in
what the sim's controllers received (independent finite-difference check) and no lockstep wait timed out;
a random-weight model through the same path does not succeed.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, Float64MultiArray, String

from cosmos_ros.msg import SimEpisode
from cosmos_ros.sim.config import JOINT_NAMES
from cosmos_ros.testing.ros_harness import NodeProcess, TestPeer, wait_until
from cosmos_ros.tools.eval_closed_loop import run_row

pytestmark = [pytest.mark.ros]
LATCHED = QoSProfile(
    depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def _diag_values(rec) -> dict[str, str]:
    out: dict[str, str] = {}
    for arr in rec.messages:
        for st in arr.status:
            if st.name.endswith("simulation"):
                out = {kv.key: kv.value for kv in st.values}
    return out


def test_sim_node_publishes_its_topics_and_refuses_bad_setpoints(domain_id):
    sim = NodeProcess(
        "cosmos_ros.nodes.sim_node",
        domain_id,
        params={"lockstep": False, "real_time_factor": 2.0, "num_episodes": 0, "image_size": 64,
                "safety_node_name": "", "camera_rate_hz": 5.0},
    )  # fmt: skip
    with TestPeer(domain_id, name="sim_peer") as peer, sim:
        clock = peer.record(Clock, "/clock")
        joints = peer.record(JointState, "/joint_states")
        images = peer.record(Image, "/image_raw")
        infos = peer.record(CameraInfo, "/camera_info")
        goals = peer.record(String, "/goal", LATCHED)
        episodes = peer.record(SimEpisode, "/sim_episode", LATCHED)
        diags = peer.record(DiagnosticArray, "/diagnostics")
        assert wait_until(lambda: len(images) >= 2 and len(infos) >= 2 and len(clock) >= 10, 60), sim.output()
        js = joints.messages[-1]
        assert list(js.name) == list(JOINT_NAMES) and len(js.position) == 8
        img = images.messages[-1]
        assert (img.width, img.height, img.encoding, len(img.data)) == (64, 64, "rgb8", 64 * 64 * 3)
        assert infos.messages[-1].k[0] > 0
        assert wait_until(lambda: len(goals) >= 1 and len(episodes) >= 1, 30)
        assert goals.messages[-1].data.startswith("touch the ")
        assert (
            episodes.messages[-1].goal == goals.messages[-1].data
            and len(episodes.messages[-1].object_names) == 3
        )
        times = [m.clock.sec + m.clock.nanosec * 1e-9 for m in clock.messages]
        assert all(b > a for a, b in itertools.pairwise(times))

        nan = peer.publisher(Float64, "/panda_joint2/setpoint")
        beyond = peer.publisher(Float64MultiArray, "/forward_position_controller/commands")
        short = peer.publisher(Float64MultiArray, "/forward_position_controller/commands")
        assert peer.wait_for_subscribers(nan) and peer.wait_for_subscribers(beyond)

        def counted() -> bool:
            # Published again until counted: a volatile message sent right after matching can be missed.
            nan.publish(Float64(data=math.nan))
            beyond.publish(Float64MultiArray(data=[0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.04]))  # joint4 > 0
            short.publish(Float64MultiArray(data=[0.0, 0.0]))
            v = _diag_values(diags)
            return all(
                int(v.get(f"refused_{r}", "0")) >= 1 for r in ("non_finite", "out_of_range", "malformed")
            )

        assert wait_until(counted, 30, period=0.5), (str(_diag_values(diags)), sim.output()[-2000:])
        assert sim.alive()
        assert "setpoint refused (non_finite)" in sim.output()


def test_expert_through_the_real_safety_node_succeeds_within_limits(tmp_path: Path, domain_id):
    result = run_row("expert", 2, 1_000_000, "", "arm7_joints", 0.0, 10, tmp_path, domain_id)
    assert not result.error, result.error
    assert result.episodes == 2 and result.successes == 2, result
    assert all(t < 4.0 for t in result.times_to_success), result.times_to_success
    assert result.plans >= 2 and result.decisions["rejected"] == 0
    assert result.violations == 0 and result.lockstep_timeouts == 0
    assert sum(result.refusals.values()) == 0


def test_expert_with_emulated_latency_still_succeeds(tmp_path: Path, domain_id):
    result = run_row("expert", 1, 1_000_001, "", "arm7_joints", 0.3, 10, tmp_path, domain_id)
    assert not result.error, result.error
    assert result.successes == 1 and result.lockstep_timeouts == 0 and result.violations == 0


@pytest.mark.slow
def test_random_weights_do_not_succeed(tmp_path: Path, domain_id, tiny_model_dir):
    result = run_row("random", 1, 1_000_000, str(tiny_model_dir), "arm7_joints", 0.0, 2, tmp_path, domain_id)
    assert not result.error, result.error
    assert result.episodes == 1 and result.successes == 0
    assert result.plans >= 5 and result.lockstep_timeouts == 0 and result.violations == 0


# The first evaluation seeds (not chosen: the 50-episode run's first six), and the share of them the test
# requires: the committed model touched the cube in 4 of these 6 in that run (README "Closed-loop
# simulation": 76 % of 50); random weights in none. Lockstep makes outcomes repeatable up to the measured
# state race described there, so the bound leaves one episode of margin.
TRAINED_SEEDS = 6
TRAINED_MIN_SUCCESSES = 3


@pytest.mark.slow
def test_committed_trained_model_touches_the_named_cube_on_held_out_scenes(tmp_path: Path, domain_id):
    """The committed tiny policy through the real planner (fast backend), safety node and PID controllers on
    held-out evaluation seeds 1,000,000-1,000,005: at least half succeed, no limit is violated, nothing is
    rejected (random weights: ``test_random_weights_do_not_succeed``)."""
    from cosmos_ros.models import PANDA_TOUCH_TINY, profile_path

    result = run_row(
        "trained",
        TRAINED_SEEDS,
        1_000_000,
        str(PANDA_TOUCH_TINY),
        str(profile_path(PANDA_TOUCH_TINY)),
        0.0,
        10,
        tmp_path,
        domain_id,
        planner_overrides={"backend": "fast"},
    )
    assert not result.error, result.error
    assert result.episodes == TRAINED_SEEDS and result.successes >= TRAINED_MIN_SUCCESSES, result
    assert result.violations == 0 and result.lockstep_timeouts == 0 and result.decisions["rejected"] == 0
