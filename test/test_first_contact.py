"""What a new user hits first (issue 13), on real node processes over DDS, without ``launch``:

* a misspelt action space is named as one, with the valid names, by whichever node fails first;
* a goal published before the planner subscribed still reaches it (transient-local goal);
* ``lifecycle shutdown`` (finalized) ends the node's process, so a launch sees the exit;
* loading the model writes no progress bar (an empty ``[planner_node-1]`` line under ``ros2 launch``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from std_msgs.msg import String

from cosmos_ros.nodes.planner_node import GOAL_QOS
from cosmos_ros.testing.ros_harness import NodeProcess, TestPeer, wait_active, wait_until

pytestmark = pytest.mark.ros

STARTUP_S = 180.0  # torch + diffusers import and the tiny model's load on a loaded 2-core machine
EXIT_S = 30.0
VALID = "valid: arm7_joints, umi_pose_gripper"


@pytest.fixture(scope="module")
def peer(domain_id: int) -> Iterator[TestPeer]:
    with TestPeer(domain_id, name="first_contact_peer") as p:
        yield p


def _shutdown(peer: TestPeer, node: str, transition: int) -> bool:
    """``ros2 lifecycle set <node> shutdown``: True if the node answered that the transition succeeded."""
    cli = peer.node.create_client(ChangeState, f"{node}/change_state")
    try:
        assert cli.wait_for_service(timeout_sec=30.0), f"no {node}/change_state service"
        fut = cli.call_async(ChangeState.Request(transition=Transition(id=transition)))
        assert wait_until(fut.done, 30.0), "change_state did not answer"
        return bool(fut.result().success)
    finally:
        peer.node.destroy_client(cli)


def test_unknown_action_space_named_by_the_safety_node(domain_id: int) -> None:
    # What the launch file passes for action_space:=no_such_space.
    proc = NodeProcess(
        "cosmos_ros.nodes.safety_node",
        domain_id,
        params={"limits_file": "config/limits/no_such_space.yaml"},
        name="safety_typo",
    )
    with proc:
        code = proc.wait_exit(STARTUP_S)
    out = proc.output()
    assert code == 1, f"exit code {code}:\n{out[-3000:]}"
    assert f"unknown action space 'no_such_space'; {VALID}" in out, out[-3000:]
    assert "Traceback" not in out


def test_unknown_action_space_named_by_the_planner_before_loading(
    domain_id: int, tiny_model_dir: Path
) -> None:
    proc = NodeProcess(
        "cosmos_ros.nodes.planner_node",
        domain_id,
        params={"model_path": str(tiny_model_dir), "action_space": "no_such_space"},
        name="planner_typo",
    )
    with proc:
        code = proc.wait_exit(STARTUP_S)
    out = proc.output()
    assert code == 1, f"exit code {code}:\n{out[-3000:]}"
    assert f"configure failed: unknown action space 'no_such_space'; {VALID}" in out, out[-3000:]
    assert "loaded " not in out, "the model was loaded before the action space was checked"


def test_finalized_safety_node_process_exits(peer: TestPeer, domain_id: int) -> None:
    proc = NodeProcess("cosmos_ros.nodes.safety_node", domain_id, name="safety_final").start()
    try:
        assert wait_active(peer, "safety_final", STARTUP_S), proc.output()[-3000:]
        assert _shutdown(peer, "/safety_final", Transition.TRANSITION_ACTIVE_SHUTDOWN)
        code = proc.wait_exit(EXIT_S)
        assert code == 0, (
            f"still running or failed after lifecycle shutdown ({code}):\n{proc.output()[-3000:]}"
        )
        assert "finalized (lifecycle shutdown): exiting" in proc.output()
    finally:
        proc.stop()


def test_planner_goal_before_start_then_finalized_exit(
    peer: TestPeer, domain_id: int, tiny_model_dir: Path
) -> None:
    """One planner process: the goal that was published before it existed arrives; no progress bar in its
    output; after lifecycle shutdown it exits 0."""
    goal = "pick up the red block"
    pub = peer.publisher(String, "/late/goal", GOAL_QOS)
    pub.publish(String(data=goal))  # nobody subscribes yet: kept by the transient-local publisher
    proc = NodeProcess(
        "cosmos_ros.nodes.planner_node",
        domain_id,
        params={"model_path": str(tiny_model_dir), "action_space": "arm7_joints", "num_inference_steps": 2},
        name="planner_late",
        namespace="/late",
    ).start()
    try:
        assert wait_active(peer, "/late/planner_late", STARTUP_S), proc.output()[-3000:]
        assert wait_until(lambda: f"goal: {goal!r}" in proc.output(), 30.0), (
            f"the goal published before the planner started never reached it:\n{proc.output()[-3000:]}"
        )
        out = proc.output()
        assert "Loading pipeline components" not in out and "\r" not in out, out[-3000:]
        assert _shutdown(peer, "/late/planner_late", Transition.TRANSITION_ACTIVE_SHUTDOWN)
        code = proc.wait_exit(EXIT_S)
        assert code == 0, (
            f"still running or failed after lifecycle shutdown ({code}):\n{proc.output()[-3000:]}"
        )
    finally:
        proc.stop()
        peer.node.destroy_publisher(pub)
