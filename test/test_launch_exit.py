"""How `ros2 launch cosmos_ros planner.launch.py` ends (issue 13): non-zero with the node's reason when a node
fails to configure; zero, and promptly, when a node is finalized by ``lifecycle shutdown``.

Runs the launch file in a subprocess through ``launch.LaunchService.run()``, whose return value is what
``ros2 launch`` exits with. Needs only ``launch`` and ``launch_ros`` (not launch_pytest); both come with
ROS 2 and are not on PyPI, so in the pip-wheel environment this module skips with that reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("launch", reason="launch is not on PyPI (it comes with a ROS 2 install)")
pytest.importorskip("launch_ros", reason="launch_ros is not on PyPI (it comes with a ROS 2 install)")

from ament_index_python.packages import get_package_share_directory
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState

from cosmos_ros.dds_env import use_localhost_discovery
from cosmos_ros.testing.ros_harness import TestPeer, wait_active, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

LAUNCH_FILE = os.path.join(get_package_share_directory("cosmos_ros"), "launch", "planner.launch.py")
STARTUP_S = 180.0


def _launch(tmp_path: Path, domain_id: int, args: dict[str, str]) -> subprocess.Popen[bytes]:
    script = tmp_path / "run_launch.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from launch import LaunchDescription, LaunchService
            from launch.actions import IncludeLaunchDescription
            from launch.launch_description_sources import PythonLaunchDescriptionSource
            ls = LaunchService()
            ls.include_launch_description(LaunchDescription([IncludeLaunchDescription(
                PythonLaunchDescriptionSource({LAUNCH_FILE!r}), launch_arguments={args!r}.items())]))
            sys.exit(ls.run())
            """
        )
    )
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id))
    use_localhost_discovery(env)
    # Output to a file, not a pipe: a pipe nobody reads fills up and blocks the launch mid-run.
    with open(tmp_path / "launch.log", "w") as log:
        return subprocess.Popen([sys.executable, str(script)], env=env, stdout=log, stderr=subprocess.STDOUT)


def _output(tmp_path: Path) -> str:
    return (tmp_path / "launch.log").read_text(errors="replace")


@pytest.fixture
def peer(domain_id: int) -> Iterator[TestPeer]:
    with TestPeer(domain_id, name="launch_exit_peer") as p:
        yield p


def test_unknown_action_space_ends_the_launch_non_zero_with_the_reason(
    tmp_path: Path, domain_id: int, tiny_model_dir: Path
) -> None:
    proc = _launch(tmp_path, domain_id, {"model_path": str(tiny_model_dir), "action_space": "no_such_space"})
    proc.wait(timeout=STARTUP_S)
    out = _output(tmp_path)
    assert proc.returncode == 1, f"launch exited {proc.returncode}:\n{out}"
    # launch's own ERROR line carries the node's reason (whichever node failed first).
    reason = [line for line in out.splitlines() if "[launch]" in line and "exited with code 1" in line]
    assert reason and "unknown action space 'no_such_space'; valid: arm7_joints" in reason[0], out


def test_finalized_planner_ends_the_launch_with_zero(
    tmp_path: Path, domain_id: int, tiny_model_dir: Path, peer: TestPeer
) -> None:
    proc = _launch(
        tmp_path,
        domain_id,
        {"model_path": str(tiny_model_dir), "action_space": "arm7_joints", "num_inference_steps": "2"},
    )
    try:
        assert wait_active(peer, "planner_node", STARTUP_S), "planner_node did not become active"
        cli = peer.node.create_client(ChangeState, "/planner_node/change_state")
        assert cli.wait_for_service(timeout_sec=30.0)
        fut = cli.call_async(
            ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVE_SHUTDOWN))
        )
        assert wait_until(fut.done, 30.0) and fut.result().success
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    out = _output(tmp_path)
    assert proc.returncode == 0, f"launch exited {proc.returncode}:\n{out}"
    assert "planner_node-1 exited with code 0" in out or "process has finished cleanly" in out, out
