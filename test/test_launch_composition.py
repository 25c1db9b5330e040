"""Composition (issue 5): another launch file includes planner.launch.py twice, as a user's two-arm stack
would: one arm under PushRosNamespace + SetRemap, one with namespace:= and single_process:=true.

Skips in the pip-wheel environment (launch/launch_ros/launch_pytest are not on PyPI); runs where ROS 2 is
installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest",
    reason="launch/launch_ros/launch_pytest are not on PyPI (they come with a ROS 2 install); "
    "these tests run where ROS 2 is installed",
)
pytest.importorskip("launch_ros", reason="launch_ros is not on PyPI (comes with a ROS 2 install)")

from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import GroupAction, IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch_ros.actions import PushRosNamespace, SetRemap  # noqa: E402

from cosmos_ros.dds_env import use_localhost_discovery  # noqa: E402
from cosmos_ros.testing.ros_harness import TestPeer, wait_active, wait_until  # noqa: E402

pytestmark = pytest.mark.ros

LAUNCH_FILE = os.path.join(get_package_share_directory("cosmos_ros"), "launch", "planner.launch.py")


@pytest.fixture(scope="module", autouse=True)
def _domain(domain_id: int) -> None:
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    use_localhost_discovery(os.environ)


@launch_pytest.fixture(scope="module")
def two_arms(tiny_model_dir: Path) -> LaunchDescription:
    common = {"model_path": str(tiny_model_dir), "action_space": "arm7_joints"}
    left = GroupAction(
        [
            PushRosNamespace("left_arm"),
            SetRemap("image_raw", "/left_wrist/color/image_raw"),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(LAUNCH_FILE), launch_arguments=common.items()
            ),
        ]
    )
    right = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(LAUNCH_FILE),
        launch_arguments={**common, "namespace": "right_arm", "single_process": "true"}.items(),
    )
    return LaunchDescription([left, right, launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=two_arms)
def test_two_instances_side_by_side(domain_id: int) -> None:
    with TestPeer(domain_id) as peer:
        for node in ("/left_arm/planner_node", "/left_arm/safety_node"):
            assert wait_active(peer, node, timeout=90), node
        for node in ("/right_arm/planner_node", "/right_arm/safety_node"):
            assert wait_active(peer, node, timeout=90), node

        def topics_present() -> bool:
            names = dict(peer.node.get_topic_names_and_types())
            return (
                "/left_wrist/color/image_raw" in names  # remapped by the including launch file
                and "/left_arm/action_sequence" in names
                and "/right_arm/image_raw" in names
                and "/right_arm/action_sequence" in names
            )

        assert wait_until(topics_present, timeout=30), sorted(dict(peer.node.get_topic_names_and_types()))
