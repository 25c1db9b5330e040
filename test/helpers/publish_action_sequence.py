"""Publish one known ActionSequence repeatedly until a subscriber acknowledges (used by test_messages.py).

Run as a separate process so the message really crosses DDS between processes.
Usage: python publish_action_sequence.py <topic> <seconds>
"""

import sys
import time

import numpy as np
import rclpy

from cosmos_ros.nodes.conversions import plan_to_msg
from cosmos_ros.plan import Plan


def known_plan() -> Plan:
    t = np.arange(4, dtype=np.float64)[:, None]
    values = np.hstack([0.1 * t, 0.2 * t, 0.3 + 0 * t, 0 * t, 0 * t, 0 * t, 1 + 0 * t, 0.04 - 0.01 * t])
    return Plan(
        plan_id=42,
        stamp_s=1700000000.25,
        t0_s=1700000000.5,
        step_period_s=0.1,
        axis_names=("x", "y", "z", "qx", "qy", "qz", "qw", "gripper"),
        values=values,
        frame_id="base_link",
        action_space="umi_pose_gripper",
        goal="pick up the red block",
        model_id="tiny-random",
        backend="diffusers",
        raw_actions=np.linspace(-1, 1, 40, dtype=np.float32).reshape(4, 10),
        inference_time_s=0.125,
        queue_time_s=0.0078125,
    )


def main() -> int:
    topic, seconds = sys.argv[1], float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("action_sequence_publisher")
    pub = node.create_publisher(type(plan_to_msg(known_plan())), topic, 10)
    msg = plan_to_msg(known_plan())
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if pub.get_subscription_count() > 0:
                pub.publish(msg)
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
