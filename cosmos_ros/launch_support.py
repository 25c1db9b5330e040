"""The pure half of ``launch/planner.launch.py``: its arguments, their mapping onto node parameters, and the
reading of a node's failure reason. No ``launch`` import, so all of it is tested without ROS.

Arguments that pass a node parameter through take its description, choices and checks from the node's
schema (``cosmos_ros/schemas``), so a bad value ends the launch with the parameter's message before any node
starts, and a new choice in a core registry shows up in ``ros2 launch ... --show-args`` by itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from cosmos_ros.parameter_schema import ParameterSchema, launch_argument, parse_launch_value

_PLANNER = ParameterSchema.load("planner_node")
# Launch arguments that set the planner parameter of the same name: name -> (launch default, note). The
# description, choices and range come from schemas/planner_node.yaml; an empty value keeps the params file's.
PLANNER_PASS_THROUGH: dict[str, tuple[str, str]] = {
    "model_path": ("", ""),
    "action_space": ("arm7_joints", ""),
    # fast + 8 steps: what the demo runs; the reference backend at the params file's 30 steps plans slower
    # than the limits' 0.5 s staleness on a CPU, so every plan of a first run would be rejected as stale.
    "backend": ("fast", "The launch default is fast (torch), the params file's diffusers (reference)."),
    "device": ("cpu", ""),
    "dtype": ("float32", ""),
    "precision": ("", ""),
    "num_inference_steps": (
        "8",
        "Plan time grows linearly with it; a plan older than the limits' staleness_limit_s when it reaches "
        "the safety node is rejected.",
    ),
    "chunk_size": ("", ""),
    "guidance_scale": ("", ""),
    "camera_topics": ("", ""),
    "compressed": ("", "One value for all topics."),
    "goal_topic": ("", ""),
}

_SAFETY = ParameterSchema.load("safety_node")
# Launch arguments that set a safety parameter: name -> (parameter, launch default, note). The description,
# choices and checks come from schemas/safety_node.yaml; an empty value keeps the params file's.
SAFETY_PASS_THROUGH: dict[str, tuple[str, str, str]] = {
    "output_adapters": ("output_adapters", "", ""),
    "setpoint_topic_pattern": ("float64_per_axis.topic_pattern", "", ""),
    "commands_topic": ("float64_multi_array.topic", "", ""),
    "trajectory_topic": ("joint_trajectory.topic", "", ""),
    "pose_topic": ("pose_stamped.topic", "", ""),
    "measured_state_topic": ("measured_state_topic", "", ""),
    "measured_state_type": ("measured_state_type", "", ""),
    "shadow_mode": ("shadow_mode", "false", ""),
}

ARGUMENTS: dict[str, tuple[str, str]] = {
    # name: (default, description)
    **{name: launch_argument(_PLANNER[name], *given) for name, given in PLANNER_PASS_THROUGH.items()},
    "limits_file": ("", "Safety limits YAML; empty: config/limits/<action_space>.yaml."),
    "planner_params_file": ("", "Planner params file; empty: the package's config/planner.yaml."),
    "safety_params_file": ("", "Safety params file; empty: the package's config/safety.yaml."),
    "namespace": ("", "Namespace for both nodes and all their (relative) topics."),
    **{
        name: launch_argument(_SAFETY[param], default, note)
        for name, (param, default, note) in SAFETY_PASS_THROUGH.items()
    },
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


# sim.launch.py: the arguments that set a node parameter, always passed (the sim launch has no params files):
# name -> (node schema, launch default, note).
SIM_PASS_THROUGH: dict[str, tuple[str, str, str]] = {
    "goal": ("sim_node", "", ""),
    "first_seed": ("sim_node", "1000000", ""),
    "num_episodes": ("sim_node", "0", "The launch default runs forever."),
    "real_time_factor": ("sim_node", "1.0", "Lower it when the model is slow on this CPU."),
    "camera_rate_hz": ("sim_node", "5.0", ""),
    "num_inference_steps": ("planner_node", "10", ""),
    "max_plan_rate_hz": ("planner_node", "2.0", ""),
}
_SCHEMAS = {"planner_node": _PLANNER, "safety_node": _SAFETY, "sim_node": ParameterSchema.load("sim_node")}


def sim_arguments() -> dict[str, tuple[str, str]]:
    """sim.launch.py's pass-through arguments: name -> (default, description from the node's schema)."""
    return {
        name: launch_argument(_SCHEMAS[node][name], default, note, empty_keeps=False)
        for name, (node, default, note) in SIM_PASS_THROUGH.items()
    }


def sim_parameters(arg: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """node -> {parameter: typed, checked value} of the :data:`SIM_PASS_THROUGH` arguments in ``arg``.

    Raises:
        ValueError: A value that does not parse or fails the parameter's validation (names it).
    """
    out: dict[str, dict[str, Any]] = {"sim_node": {}, "planner_node": {}}
    for name, (node, _, _) in SIM_PASS_THROUGH.items():
        out[node][name] = parse_launch_value(_SCHEMAS[node][name], arg[name])
    return out


def parse_bool(name: str, text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "1", "yes", "on"):
        return True
    if t in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"launch argument {name} must be true or false, got {text!r}")


def node_parameters(arg: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Planner and safety parameters (on top of the params files) from the launch arguments' values.

    Args:
        arg: every name of :data:`ARGUMENTS` to its value as text; an empty value keeps the params file's.

    Raises:
        ValueError: a boolean or number argument that does not parse (the message names it).
    """
    unknown = sorted(set(arg) - set(ARGUMENTS))
    if unknown:
        raise ValueError(f"unknown launch argument(s) {unknown}; valid: {', '.join(ARGUMENTS)}")
    action_space = arg["action_space"]
    space_name = os.path.splitext(os.path.basename(action_space))[0]
    common = {
        "use_sim_time": parse_bool("use_sim_time", arg["use_sim_time"]),
        "autostart": parse_bool("autostart", arg["autostart"]),
    }
    planner: dict[str, Any] = {**common, "model_path": arg["model_path"]}  # "": configure names the problem
    for name in PLANNER_PASS_THROUGH:
        if arg[name]:  # typed and checked here, so a bad value ends the launch before any node starts
            planner[name] = parse_launch_value(_PLANNER[name], arg[name])

    safety: dict[str, Any] = {
        **common,
        # The safety node says "unknown action space" (and lists the valid ones) when this file is missing.
        "limits_file": arg["limits_file"] or f"config/limits/{space_name}.yaml",
    }
    for name, (param, _, _) in SAFETY_PASS_THROUGH.items():
        if arg[name]:
            safety[param] = parse_launch_value(_SAFETY[param], arg[name])
    return planner, safety


def with_defaults(given: Mapping[str, str]) -> dict[str, str]:
    """``given`` launch arguments completed with the declared defaults (what ``ros2 launch`` resolves)."""
    unknown = sorted(set(given) - set(ARGUMENTS))
    if unknown:
        raise ValueError(f"unknown launch argument(s) {unknown}; valid: {', '.join(ARGUMENTS)}")
    return {name: given.get(name, default) for name, (default, _) in ARGUMENTS.items()}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# rcutils' default console format: "[ERROR] [1796087710.684592593] [safety_node]: message"
_ERROR = re.compile(r"\[(?:ERROR|FATAL)\] \[[0-9.]+\] \[[^\]]*\]: (.*)")
# The nodes' last words after a failed autostart only point back at the line that names the reason.
_POINTERS = ("(see above)", "(reason above)")


def last_error_line(text: str) -> str:
    """The last ERROR/FATAL log message in ``text`` that names a reason, without colour codes and prefix.

    Args:
        text: one or more lines of a node's console output (``emulate_tty`` colours them).

    Returns:
        The message after the ``[LEVEL] [stamp] [logger]: `` prefix; '' when there is none.
    """
    found = ""
    for line in _ANSI.sub("", text).splitlines():
        m = _ERROR.search(line)
        if m and not any(p in m.group(1) for p in _POINTERS):
            found = m.group(1).strip()
    return found
