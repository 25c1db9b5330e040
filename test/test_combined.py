"""The single-process runner (`planner_and_safety`, launch arg single_process:=true) over DDS.

One process, both lifecycle nodes: images + goal + joint states in, plans, statuses and controller setpoints
out, under a namespace (as a composed second arm would run).

Timing is deterministic: both nodes run on sim time and the test owns ``/clock``. The clock stands still
while the model plans (on a loaded 2-core machine one tiny-model plan took 1-5 s of wall time, longer than the
chunk's 0.27 s horizon), so the plan reaches the safety node at the frame's own time, exactly as in the
lockstep replay (``cosmos_ros.replay.player.Lockstep``); afterwards the clock advances one control period at
a time and each tick's setpoint is awaited. No assertion depends on how fast the machine is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String

from cosmos_ros.msg import ActionSequence, SafetyStatus
from cosmos_ros.nodes.planner_node import GOAL_QOS
from cosmos_ros.testing.ros_harness import NodeProcess, TestPeer, wait_active, wait_until

pytestmark = pytest.mark.ros

NS = "/right_arm"
JOINTS = [f"panda_joint{i}" for i in range(1, 8)] + ["gripper"]
READY = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.04]
T0_NS = 100 * 10**9  # sim time of the frame (any value; the nodes only see /clock)
CONTROL_PERIOD_NS = 10**7  # config/limits/arm7_joints.yaml: control_rate_hz 100


def _time(ns: int) -> Time:
    return Time(sec=ns // 10**9, nanosec=ns % 10**9)


def test_planner_and_safety_in_one_process(domain_id: int, tiny_model_dir: Path) -> None:
    params = {
        "model_path": str(tiny_model_dir),
        "action_space": "arm7_joints",
        "num_inference_steps": 2,
        "chunk_size": 4,
        "camera_topics": ["image_raw"],
        "limits_file": "config/limits/arm7_joints.yaml",
        "output_adapters": ["float64_multi_array"],
        "use_sim_time": True,
    }
    node = NodeProcess("cosmos_ros.nodes.combined", domain_id, params=params, namespace=NS)
    with TestPeer(domain_id) as peer, node:
        clock = peer.publisher(Clock, "/clock")
        plans = peer.record(ActionSequence, f"{NS}/action_sequence")
        status = peer.record(SafetyStatus, f"{NS}/safety_status")
        commands = peer.record(Float64MultiArray, f"{NS}/forward_position_controller/commands")
        joints = peer.publisher(JointState, f"{NS}/joint_states")
        images = peer.publisher(Image, f"{NS}/image_raw")
        goal = peer.publisher(String, f"{NS}/goal", GOAL_QOS)
        assert wait_active(peer, f"{NS}/safety_node", timeout=240), node.output()[-3000:]
        assert wait_active(peer, f"{NS}/planner_node", timeout=240), node.output()[-3000:]
        assert peer.wait_for_subscribers(clock, count=2, timeout=30), "the nodes do not listen to /clock"
        assert peer.wait_for_subscribers(images, timeout=30)
        assert peer.wait_for_subscribers(joints, timeout=30)
        assert peer.wait_for_subscribers(goal, timeout=30)

        # Clock frozen at T0: state, goal and one frame, then wait (wall time, generously) for the decision.
        stamp = _time(T0_NS)
        rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)

        def publish_inputs() -> None:
            clock.publish(Clock(clock=stamp))
            js = JointState(name=JOINTS, position=READY)
            js.header.stamp = stamp
            joints.publish(js)
            goal.publish(String(data="pick up the red block"))

        def decided() -> bool:
            publish_inputs()  # until the nodes have them: volatile topics, late-joining readers
            return any(s.plan_id > 0 for s in status.messages)

        img = Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=rgb.tobytes())
        img.header.stamp = stamp
        for _ in range(3):  # let the state and goal arrive first; one frame is all the planner needs
            publish_inputs()
            wait_until(lambda: False, timeout=0.2)
        images.publish(img)
        assert wait_until(decided, timeout=180, period=0.2), node.output()[-3000:]
        assert plans.messages, node.output()[-3000:]
        first = next(s for s in status.messages if s.plan_id > 0)
        plan = plans.messages[0]
        assert (plan.header.stamp.sec, plan.header.stamp.nanosec) == (stamp.sec, stamp.nanosec)
        assert first.decision in (SafetyStatus.DECISION_ACCEPTED, SafetyStatus.DECISION_CLAMPED), (
            f"first plan decision {first.decision}: {list(first.reasons)} {first.message}"
        )
        assert first.steps_skipped == 0

        # Advance one control period at a time; every tick of the plan's horizon sends a setpoint.
        period_ns = plan.step_period.sec * 10**9 + plan.step_period.nanosec
        horizon_ns = len(plan.trajectory.points) * period_ns
        before = len(commands)
        t = T0_NS
        while t < T0_NS + horizon_ns:
            t += CONTROL_PERIOD_NS
            n = len(commands)
            clock.publish(Clock(clock=_time(t)))
            got = wait_until(lambda n=n: len(commands) > n, timeout=30)
            assert got, f"no setpoint for the tick at {t} ns"
        assert len(commands) - before >= horizon_ns // CONTROL_PERIOD_NS
        assert all(len(c.data) == len(JOINTS) for c in commands.messages)
        assert all(np.all(np.isfinite(c.data)) for c in commands.messages)
        assert node.alive()
    assert node.proc is not None and node.proc.returncode == 0, node.output()[-3000:]
