"""Start the closed loop for a person to watch: sim_node + planner (model or scripted expert) + safety node.

    ros2 launch cosmos_ros sim.launch.py model_path:=/path/to/panda_touch_tiny
    ros2 launch cosmos_ros sim.launch.py planner:=expert goal:="touch the blue cube"

Data path: sim camera + goal -> planner -> action_sequence -> safety_node -> <axis>/setpoint and
forward_position_controller/commands -> the sim's PID controllers -> joint_states -> safety_node.

Time: the sim publishes /clock, the planner and the safety node run on it (use_sim_time). Here the sim
runs free (``lockstep: false``, paced by ``real_time_factor``); ``eval_closed_loop`` runs the same nodes in
lockstep for numbers. The goal comes from ``goal:=...`` or, empty, the seeded colour of each episode;
publishing another ``touch the <colour> cube`` on /goal switches the episode's target. Watch ``/image_raw``
(e.g. rqt_image_view), ``/sim_episode`` and ``/safety_status``. A node that exits ends the launch.
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from cosmos_ros.launch_support import sim_arguments, sim_parameters

ARGUMENTS: dict[str, tuple[str, str]] = {
    "planner": ("model", "model: planner_node with model_path; expert: the scripted IK expert."),
    "model_path": ("", "Cosmos 3 pipeline directory (planner:=model)."),
    "action_space": (
        "",
        "Profile name or YAML; empty: <model_path>/action_space.yaml if present, else arm7_joints.",
    ),
    # goal, first_seed, num_episodes, real_time_factor, camera_rate_hz, num_inference_steps,
    # max_plan_rate_hz: described and checked by the nodes' parameter schemas (cosmos_ros/schemas).
    **sim_arguments(),
    "log_level": ("info", "Log level of the three nodes."),
}


def _nodes(context: LaunchContext) -> list:
    import os

    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    if arg["planner"] not in ("model", "expert"):
        raise ValueError(f"planner must be model or expert, got {arg['planner']!r}")
    action_space = arg["action_space"]
    if not action_space:
        own = os.path.join(arg["model_path"], "action_space.yaml")
        action_space = own if arg["model_path"] and os.path.isfile(own) else "arm7_joints"
    ros_args = ["--log-level", arg["log_level"]]
    given = sim_parameters(arg)
    sim = Node(
        package="cosmos_ros",
        executable="sim_node",
        name="sim_node",
        output="screen",
        parameters=[{"lockstep": False, **given["sim_node"]}],
        ros_arguments=ros_args,
    )
    planner = Node(
        package="cosmos_ros",
        executable="expert_planner_node" if arg["planner"] == "expert" else "planner_node",
        name="planner_node",
        output="screen",
        parameters=[
            {
                "use_sim_time": True,
                "model_path": arg["model_path"] or "scripted_expert",
                "action_space": action_space,
                "camera_topics": ["image_raw"],
                "guidance_scale": 1.0,
                **given["planner_node"],
            }
        ],
        ros_arguments=ros_args,
    )
    safety = Node(
        package="cosmos_ros",
        executable="safety_node",
        name="safety_node",
        output="screen",
        parameters=[
            {
                "use_sim_time": True,
                "limits_file": "config/limits/arm7_joints.yaml",
                "output_adapters": ["float64_per_axis", "float64_multi_array"],
            }
        ],
        ros_arguments=ros_args,
    )
    nodes = [sim, planner, safety]
    actions: list = list(nodes)
    for node in nodes:
        actions.append(
            RegisterEventHandler(
                OnProcessExit(
                    target_action=node,
                    on_exit=lambda event, ctx: [
                        LogInfo(msg=f"[cosmos_ros] {event.action.name} exited with code {event.returncode}"),
                        EmitEvent(event=Shutdown(reason=f"{event.action.name} exited ({event.returncode})")),
                    ],
                )
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=doc)
        for name, (default, doc) in ARGUMENTS.items()
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
