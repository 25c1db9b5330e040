"""The pure half of ``launch/planner.launch.py``: its arguments, their mapping onto node parameters, and the
reading of a node's failure reason. No ``launch`` import, so all of it is tested without ROS.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

ARGUMENTS: dict[str, tuple[str, str]] = {
    # name: (default, description)
    "model_path": ("", "Local Cosmos 3 pipeline directory (model_index.json, transformer/, vae/, ...)."),
    "action_space": ("arm7_joints", "Action-space profile (config/action_spaces/<name>.yaml) or YAML path."),
    "limits_file": ("", "Safety limits YAML; empty: config/limits/<action_space>.yaml."),
    "backend": ("fast", "Policy backend: fast (torch, default) | diffusers (reference) | tensorrt."),
    "device": ("cpu", "Inference device: cpu | cuda | cuda:N."),
    "dtype": ("float32", "Inference dtype: float32 | bfloat16 | float16."),
    # fast + 8 steps: what the demo runs; the reference backend at the params file's 30 steps plans slower
    # than the limits' 0.5 s staleness on a CPU, so every plan of a first run would be rejected as stale.
    "num_inference_steps": (
        "8",
        "Denoising steps per plan (1..1000; empty: the params file's). Plan time grows linearly with it; a "
        "plan older than the limits' staleness_limit_s when it reaches the safety node is rejected.",
    ),
    "chunk_size": ("", "Actions per plan (multiple of 4, 4..512); empty: the params file's (16)."),
    "guidance_scale": ("", "Classifier-free guidance (1.0 = off, half the cost); empty: the params file's."),
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

# Launch arguments that, when not empty, set a safety parameter of another name.
_SAFETY_TOPICS = (
    ("setpoint_topic_pattern", "float64_per_axis.topic_pattern"),
    ("commands_topic", "float64_multi_array.topic"),
    ("trajectory_topic", "joint_trajectory.topic"),
    ("pose_topic", "pose_stamped.topic"),
    ("measured_state_topic", "measured_state_topic"),
    ("measured_state_type", "measured_state_type"),
)


def parse_bool(name: str, text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "1", "yes", "on"):
        return True
    if t in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"launch argument {name} must be true or false, got {text!r}")


def _list(text: str) -> list[str]:
    return [p.strip() for p in text.strip().strip("[]").split(",") if p.strip()]


def _number(name: str, text: str, convert: type) -> Any:
    try:
        return convert(text.strip())
    except ValueError:
        raise ValueError(f"launch argument {name} must be {convert.__name__}, got {text!r}") from None


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
    planner: dict[str, Any] = {
        **common,
        "model_path": arg["model_path"],
        "action_space": action_space,
        "backend": arg["backend"],
        "device": arg["device"],
        "dtype": arg["dtype"],
    }
    for name, convert in (("num_inference_steps", int), ("chunk_size", int), ("guidance_scale", float)):
        if arg[name]:
            planner[name] = _number(name, arg[name], convert)
    if arg["camera_topics"]:
        planner["camera_topics"] = _list(arg["camera_topics"])
    if arg["compressed"]:
        planner["compressed"] = parse_bool("compressed", arg["compressed"])
    if arg["goal_topic"]:
        planner["goal_topic"] = arg["goal_topic"]

    safety: dict[str, Any] = {
        **common,
        # The safety node says "unknown action space" (and lists the valid ones) when this file is missing.
        "limits_file": arg["limits_file"] or f"config/limits/{space_name}.yaml",
        "shadow_mode": parse_bool("shadow_mode", arg["shadow_mode"]),
    }
    if arg["output_adapters"]:
        safety["output_adapters"] = _list(arg["output_adapters"])
    for launch_arg, param in _SAFETY_TOPICS:
        if arg[launch_arg]:
            safety[param] = arg[launch_arg]
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
