"""The single-process runner (`planner_and_safety`, launch arg single_process:=true) over DDS.

One process, both lifecycle nodes: images + goal + joint states in, plans, statuses and controller setpoints
out, under a namespace (as a composed second arm would run).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String

from cosmos_ros.msg import ActionSequence, SafetyStatus
from cosmos_ros.nodes.planner_node import GOAL_QOS
from cosmos_ros.testing.ros_harness import NodeProcess, TestPeer, wait_active, wait_until

pytestmark = pytest.mark.ros

NS = "/right_arm"
JOINTS = [f"panda_joint{i}" for i in range(1, 8)] + ["gripper"]
READY = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.04]


def test_planner_and_safety_in_one_process(domain_id: int, tiny_model_dir: Path) -> None:
    params = {
        "model_path": str(tiny_model_dir),
        "action_space": "arm7_joints",
        "num_inference_steps": 2,
        "chunk_size": 4,
        "max_plan_rate_hz": 5.0,
        "camera_topics": ["image_raw"],
        "limits_file": "config/limits/arm7_joints.yaml",
        "output_adapters": ["float64_multi_array"],
    }
    node = NodeProcess("cosmos_ros.nodes.combined", domain_id, params=params, namespace=NS)
    with TestPeer(domain_id) as peer, node:
        assert wait_active(peer, f"{NS}/safety_node", timeout=60), node.output()[-3000:]
        assert wait_active(peer, f"{NS}/planner_node", timeout=60), node.output()[-3000:]
        plans = peer.record(ActionSequence, f"{NS}/action_sequence")
        status = peer.record(SafetyStatus, f"{NS}/safety_status")
        commands = peer.record(Float64MultiArray, f"{NS}/forward_position_controller/commands")
        joints = peer.publisher(JointState, f"{NS}/joint_states")
        images = peer.publisher(Image, f"{NS}/image_raw")
        goal = peer.publisher(String, f"{NS}/goal", GOAL_QOS)
        assert peer.wait_for_subscribers(images, timeout=30)
        rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(s.plan_id > 0 for s in status.messages):
            now = peer.node.get_clock().now().to_msg()
            joints.publish(JointState(name=JOINTS, position=READY))
            goal.publish(String(data="pick up the red block"))
            img = Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=rgb.tobytes())
            img.header.stamp = now
            images.publish(img)
            time.sleep(0.1)
        assert plans.messages, node.output()[-3000:]
        decided = [s for s in status.messages if s.plan_id > 0]
        assert decided, node.output()[-3000:]
        assert decided[0].decision in (SafetyStatus.DECISION_ACCEPTED, SafetyStatus.DECISION_CLAMPED)
        n = len(commands)
        assert wait_until(lambda: len(commands) > n + 20, timeout=10), "no setpoints streamed after the plan"
        assert len(commands.messages[-1].data) == len(JOINTS)
        assert node.alive()
    assert node.proc is not None and node.proc.returncode == 0, node.output()[-3000:]
