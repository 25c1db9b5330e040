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
model dir, bad limits file) it logs the reason at ERROR and exits with status 1, and this launch shuts down
with that reason instead of hanging.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    GroupAction,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

ARGUMENTS: dict[str, tuple[str, str]] = {
    # name: (default, description)
    "model_path": ("", "Local Cosmos 3 pipeline directory (model_index.json, transformer/, vae/, ...)."),
    "action_space": ("arm7_joints", "Action-space profile (config/action_spaces/<name>.yaml) or YAML path."),
    "limits_file": ("", "Safety limits YAML; empty: config/limits/<action_space>.yaml."),
    "backend": ("diffusers", "Policy backend: diffusers (reference) | fast (torch) | tensorrt."),
    "device": ("cpu", "Inference device: cpu | cuda | cuda:N."),
    "dtype": ("float32", "Inference dtype: float32 | bfloat16 | float16."),
    "planner_params_file": ("", "Planner params file; empty: the package's config/planner.yaml."),
    "safety_params_file": ("", "Safety params file; empty: the package's config/safety.yaml."),
    "namespace": ("", "Namespace for both nodes and all their (relative) topics."),
    "camera_topics": ("", "Camera topic(s), comma separated; empty: keep the params file's."),
    "compressed": ("", "true: camera topics are CompressedImage; empty: keep the params file's."),
    "goal_topic": ("", "Goal topic (std_msgs/String); empty: keep the params file's."),
    "output_adapters": (
        "",
        "Comma separated subset of float64_per_axis, float64_multi_array, pose_stamped, joint_trajectory; "
        "empty: keep the params file's.",
    ),
    "setpoint_topic_pattern": ("", "float64_per_axis topic pattern, e.g. '{axis}/setpoint'; empty: keep."),
    "commands_topic": ("", "float64_multi_array topic (forward_command_controller); empty: keep."),
    "trajectory_topic": ("", "joint_trajectory topic (JointTrajectoryController); empty: keep."),
    "pose_topic": ("", "pose_stamped topic (cartesian controller target); empty: keep."),
    "measured_state_topic": ("", "Measured state topic (JointState or PoseStamped); empty: keep."),
    "measured_state_type": ("", "joint_state | pose (pose action spaces); empty: keep the params file's."),
    "shadow_mode": ("false", "true: compute everything, publish setpoints only under ~/shadow/."),
    "fastdds_profile": (
        "config/fastdds_large_frames.xml",
        "Fast DDS profile for the planner (16 MiB shared-memory segment for raw images); ignored when "
        "FASTDDS_DEFAULT_PROFILES_FILE is set; empty: Fast DDS defaults.",
    ),
    "use_sim_time": ("false", "Use /clock (e.g. from `ros2 run cosmos_ros replay --clock`)."),
    "log_level": ("info", "Log level of both nodes."),
    "autostart": ("true", "Nodes configure+activate themselves; false: wait for a lifecycle manager."),
    "single_process": ("false", "Run planner and safety in one process on one executor."),
}


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "1", "yes", "on"):
        return True
    if t in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _list(text: str) -> list[str]:
    return [p.strip() for p in text.strip().strip("[]").split(",") if p.strip()]


def _share_path(share: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(share, path)


def _nodes(context: LaunchContext) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    share = get_package_share_directory("cosmos_ros")
    planner_file = _share_path(share, arg["planner_params_file"] or "config/planner.yaml")
    safety_file = _share_path(share, arg["safety_params_file"] or "config/safety.yaml")
    action_space = arg["action_space"]
    limits = arg["limits_file"] or f"config/limits/{os.path.splitext(os.path.basename(action_space))[0]}.yaml"

    common = {"use_sim_time": _bool(arg["use_sim_time"]), "autostart": _bool(arg["autostart"])}
    planner: dict = {
        **common,
        "model_path": arg["model_path"],
        "action_space": action_space,
        "backend": arg["backend"],
        "device": arg["device"],
        "dtype": arg["dtype"],
    }
    if arg["camera_topics"]:
        planner["camera_topics"] = _list(arg["camera_topics"])
    if arg["compressed"]:
        planner["compressed"] = _bool(arg["compressed"])
    if arg["goal_topic"]:
        planner["goal_topic"] = arg["goal_topic"]

    safety: dict = {**common, "limits_file": limits, "shadow_mode": _bool(arg["shadow_mode"])}
    if arg["output_adapters"]:
        safety["output_adapters"] = _list(arg["output_adapters"])
    for launch_arg, param in (
        ("setpoint_topic_pattern", "float64_per_axis.topic_pattern"),
        ("commands_topic", "float64_multi_array.topic"),
        ("trajectory_topic", "joint_trajectory.topic"),
        ("pose_topic", "pose_stamped.topic"),
        ("measured_state_topic", "measured_state_topic"),
        ("measured_state_type", "measured_state_type"),
    ):
        if arg[launch_arg]:
            safety[param] = arg[launch_arg]

    ros_args = ["--log-level", arg["log_level"]]
    planner_env = {}
    if arg["fastdds_profile"] and "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        planner_env["FASTDDS_DEFAULT_PROFILES_FILE"] = _share_path(share, arg["fastdds_profile"])
    if _bool(arg["single_process"]):
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
    # A node that exits (failed configure, crash) ends the whole launch with its reason: a planner without
    # its safety node, or the reverse, is not a state to leave running.
    for node in nodes:
        actions.append(
            RegisterEventHandler(
                OnProcessExit(
                    target_action=node,
                    on_exit=lambda event, ctx: [
                        LogInfo(msg=f"[cosmos_ros] {event.action.name} exited with code {event.returncode}"),
                        EmitEvent(
                            event=Shutdown(
                                reason=f"{event.action.name} exited with code {event.returncode} "
                                "(see its ERROR log above)"
                            )
                        ),
                    ],
                )
            )
        )
    return [GroupAction(actions, scoped=True)]


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=doc)
        for name, (default, doc) in ARGUMENTS.items()
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
