"""Start the cosmos_ros planner and safety nodes.

    ros2 launch cosmos_ros planner.launch.py model_path:=/models/Cosmos3-Nano action_space:=arm7_joints

Data path: cameras + goal -> planner_node -> action_sequence -> safety_node -> controller topics. The safety
node is the only publisher of controller topics.

Composition: include this file from your own launch file under a namespace and with remappings, e.g.

    GroupAction([
        PushRosNamespace('left_arm'),
        SetRemap('image_raw', '/left_wrist/color/image_raw'),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(
            [FindPackageShare('cosmos_ros'), '/launch/planner.launch.py']),
            launch_arguments={'model_path': '/models/Cosmos3-Nano'}.items()),
    ])

or pass ``namespace:=left_arm``; two instances with different namespaces run side by side (all topics are
relative). ``single_process:=true`` runs both nodes in one process on one executor (lower plan latency, no DDS
hop for the plan; see README "Composition").

Lifecycle: both nodes configure and activate themselves (``autostart:=true``, default). With
``autostart:=false`` they wait in *unconfigured* for a lifecycle manager. If a node fails to configure (bad
model dir, bad limits file, unknown action space) it logs the reason at ERROR and exits with status 1, and
this launch ends with status 1 and that reason instead of hanging. A node finalized with ``ros2 lifecycle set
<node> shutdown`` exits 0, and the launch ends with 0.

Defaults suit a CPU (``backend:=fast``, ``num_inference_steps:=8``); the arguments themselves, and how they
become node parameters, are in ``cosmos_ros/launch_support.py``.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    GroupAction,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit, OnProcessIO
from launch.events import Shutdown
from launch.events.process import ProcessExited, ProcessIO
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from cosmos_ros.launch_support import ARGUMENTS, last_error_line, node_parameters, parse_bool


def _share_path(share: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(share, path)


def _nodes(context: LaunchContext) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    share = get_package_share_directory("cosmos_ros")
    planner_file = _share_path(share, arg["planner_params_file"] or "config/planner.yaml")
    safety_file = _share_path(share, arg["safety_params_file"] or "config/safety.yaml")
    planner, safety = node_parameters(arg)

    ros_args = ["--log-level", arg["log_level"]]
    planner_env = {}
    if arg["fastdds_profile"] and "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        planner_env["FASTDDS_DEFAULT_PROFILES_FILE"] = _share_path(share, arg["fastdds_profile"])
    if parse_bool("single_process", arg["single_process"]):
        # One process: both params files apply to both nodes (they use `/**:`); the names that both nodes
        # declare (autostart, use_sim_time, diagnostics_period_s) are set identically here.
        nodes = [
            Node(
                package="cosmos_ros",
                executable="planner_and_safety",
                # No name=: a __node remap would rename *both* nodes of the process to one name.
                output="screen",
                additional_env=planner_env,
                emulate_tty=True,
                parameters=[planner_file, safety_file, planner, safety],
                ros_arguments=ros_args,
            )
        ]
    else:
        nodes = [
            Node(
                package="cosmos_ros",
                executable="planner_node",
                name="planner_node",
                output="screen",
                additional_env=planner_env,
                emulate_tty=True,
                parameters=[planner_file, planner],
                ros_arguments=ros_args,
            ),
            Node(
                package="cosmos_ros",
                executable="safety_node",
                name="safety_node",
                output="screen",
                emulate_tty=True,
                parameters=[safety_file, safety],
                ros_arguments=ros_args,
            ),
        ]

    actions: list = []
    if arg["namespace"]:
        actions.append(PushRosNamespace(arg["namespace"]))
    actions += nodes
    # A node that exits ends the whole launch: a planner without its safety node, or the reverse, is not a
    # state to leave running. A non-zero exit (failed configure, crash) must end `ros2 launch` non-zero too,
    # so that scripts and CI see it. launch's Shutdown event carries no exit code; the one way launch (Humble
    # to Kilted) exits non-zero is an exception in its loop, which it logs at ERROR. So the exit handler
    # raises one that carries the node's reason (its last ERROR line).
    for node in nodes:
        watch = NodeWatch()
        io = OnProcessIO(target_action=node, on_stdout=watch.feed, on_stderr=watch.feed)
        actions.append(RegisterEventHandler(io))
        actions.append(RegisterEventHandler(OnProcessExit(target_action=node, on_exit=watch.on_exit)))
    return [GroupAction(actions, scoped=True)]


class NodeExitedError(RuntimeError):
    """A node process ended with a non-zero code; launch logs this message and exits 1."""


class NodeWatch:
    """Remembers a node process's failure reason from its output, and ends the launch when it exits."""

    def __init__(self) -> None:
        self.reason = ""
        self.last_line = ""

    def feed(self, event: ProcessIO) -> None:
        text = event.text.decode(errors="replace") if isinstance(event.text, bytes) else str(event.text)
        self.reason = last_error_line(text) or self.reason
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        self.last_line = lines[-1] if lines else self.last_line

    def on_exit(self, event: ProcessExited, context: LaunchContext) -> list:
        name, code = event.action.name, event.returncode
        if context.is_shutdown:
            return []  # the launch is already ending (Ctrl-C, the other node's exit): its code is decided
        if code != 0:
            # No ERROR line: a crash; its last output line is the exception.
            raise NodeExitedError(f"{name} exited with code {code}: {self.reason or self.last_line}")
        reason = f"{name} exited with code 0 (finalized by a lifecycle shutdown)"
        return [EmitEvent(event=Shutdown(reason=reason))]


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=doc)
        for name, (default, doc) in ARGUMENTS.items()
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
