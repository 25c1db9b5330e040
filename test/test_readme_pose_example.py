"""The README's robot example for a pose space ("On a robot") on the demo bag, run the way the launch file
would run it: the same launch arguments mapped by the launch file's own code (cosmos_ros.launch_support),
the same params files, both nodes as processes, the bag replayed in lockstep.

What it checks: the bag's /ee_pose is used as the measured state (before issue 13 it was in another frame
than the limits and the safety node ignored every pose: ``measured_rejected`` in its diagnostics) and plans
are streamed. Changed for
this machine, and said here: the tiny model instead of Nano, CPU/float32 instead of cuda/bfloat16, 2 steps,
and the planner's camera topic set to the bag's /camera/image_raw (with a real robot it is the driver's).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from rosbags.rosbag2 import Reader

from cosmos_ros.launch_support import node_parameters, with_defaults
from cosmos_ros.testing.node_replay import STATUS_TOPIC, NodeReplayConfig, replay_into_nodes
from cosmos_ros.tools.make_demo_bag import make_demo_bag

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


def _robot_example() -> dict[str, str]:
    section = REPO.joinpath("README.md").read_text().split("## On a robot", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"ros2 launch cosmos_ros planner\.launch\.py((?:.*\\\n)*.*)", section)
    assert command, "no ros2 launch command in the README's 'On a robot' section"
    words = command.group(1).replace("\\\n", " ").split()
    return dict(w.split(":=", 1) for w in words if ":=" in w)


def _read(recorded: Path, topic: str, msg_type: Any) -> list[Any]:
    from rclpy.serialization import deserialize_message

    with Reader(recorded) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [deserialize_message(raw, msg_type) for _, _, raw in reader.messages(connections=conns)]


def test_readme_pose_example_streams_on_the_demo_bag(
    tmp_path: Path, tiny_model_dir: Path, repo_root: Path, domain_id: int
) -> None:
    args = _robot_example()
    assert args["action_space"] == "umi_pose_gripper" and args["measured_state_type"] == "pose"
    args.update(model_path=str(tiny_model_dir), device="cpu", dtype="float32", num_inference_steps="2")
    planner, safety = node_parameters(with_defaults(args))
    planner["camera_topics"] = ["/camera/image_raw"]
    safety["limits_file"] = str(repo_root / safety["limits_file"])
    for params in (planner, safety):
        params.pop("use_sim_time")  # the replay runs both nodes on the bag's clock
    bag = tmp_path / "demo_bag"
    make_demo_bag(bag)
    config = NodeReplayConfig(
        bag=bag,
        planner_params=planner,
        safety_params=safety,
        topics=("/camera/image_raw", "/goal", "/ee_pose", "/joint_states"),
        record_topics=(
            f"{STATUS_TOPIC}:cosmos_ros/msg/SafetyStatus",
            "/diagnostics:diagnostic_msgs/msg/DiagnosticArray",
        ),
        out_dir=tmp_path,
        frame_interval_s=1.0,
        end_offset_s=2.5,
        tick_topic=None,
        planner_params_files=(repo_root / "config" / "planner.yaml",),
        safety_params_files=(repo_root / "config" / "safety.yaml",),
        domain_id=domain_id,
    )
    recorded = replay_into_nodes(config)
    from diagnostic_msgs.msg import DiagnosticArray

    from cosmos_ros.msg import SafetyStatus

    # Every measured pose was used: none ignored (wrong frame) by the safety node.
    rejected = [
        int(kv.value)
        for arr in _read(recorded, "/diagnostics", DiagnosticArray)
        for st in arr.status
        for kv in st.values
        if kv.key == "measured_rejected"
    ]
    assert rejected and max(rejected) == 0, f"measured poses ignored by the safety node: {rejected}"
    decisions = [m for m in _read(recorded, STATUS_TOPIC, SafetyStatus) if m.plan_id > 0]
    assert decisions, "no safety decision recorded"
    streamed = [d for d in decisions if d.decision in (d.DECISION_ACCEPTED, d.DECISION_CLAMPED)]
    assert streamed, [(d.decision, list(d.reasons), d.message) for d in decisions]
