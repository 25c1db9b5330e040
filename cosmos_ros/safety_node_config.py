"""The safety node's configuration as plain data: its parameters (``schemas/safety_node.yaml``) validated.

Pure (no rclpy, no message packages, no ML stack): the controller computer's configuration is built and
tested without a ROS graph, and the launch helpers read the choices on machines without ROS. Each
parameter's type, range, choices and "relative topic" rule come from the schema
(:mod:`cosmos_ros.parameter_schema`); this module adds only what involves several parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from cosmos_ros.parameter_schema import ParameterSchema

SCHEMA = ParameterSchema.load("safety_node")
_D = SCHEMA.default  # dataclass defaults are the schema's, never restated

# The setpoint message kinds the node can publish (cosmos_ros.nodes.output_adapters makes them); the registry
# that the schema's output_adapters names.
ADAPTER_KINDS = ("float64_per_axis", "float64_multi_array", "pose_stamped", "joint_trajectory")


@dataclass(frozen=True)
class AdapterSettings:
    """Topic names and options of all adapter kinds (ROS parameters ``<kind>.<name>``).

    Attributes:
        per_axis_topic_pattern: ``str.format`` pattern with ``{axis}`` for ``float64_per_axis``.
        multi_array_topic: topic of ``float64_multi_array`` (forward_command_controller ``<name>/commands``).
        pose_topic: topic of ``pose_stamped`` (FZI ``target_frame``).
        pose_frame_id: ``header.frame_id`` of the published poses (the frame the limits are expressed in).
        gripper_topic: ``std_msgs/Float64`` topic for the ``gripper`` axis of pose spaces.
        trajectory_topic: topic of ``joint_trajectory`` (JTC ``<name>/joint_trajectory``).
        trajectory_time_from_start_s: ``time_from_start`` of the single point, seconds.
    """

    per_axis_topic_pattern: str = _D("float64_per_axis.topic_pattern")
    multi_array_topic: str = _D("float64_multi_array.topic")
    pose_topic: str = _D("pose_stamped.topic")
    pose_frame_id: str = "base_link"  # not a parameter: the limits file's frame_id
    gripper_topic: str = _D("pose_stamped.gripper_topic")
    trajectory_topic: str = _D("joint_trajectory.topic")
    trajectory_time_from_start_s: float = _D("joint_trajectory.time_from_start_s")

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in _ADAPTER_PARAMETERS:
                SCHEMA.check(_ADAPTER_PARAMETERS[f.name], getattr(self, f.name))
        if "{axis}" not in self.per_axis_topic_pattern:
            raise ValueError(
                f"per_axis_topic_pattern must contain '{{axis}}', got {self.per_axis_topic_pattern!r}"
            )
        if not self.pose_frame_id:
            raise ValueError("pose_frame_id must be non-empty")


# AdapterSettings field -> the parameter that sets it.
_ADAPTER_PARAMETERS = {
    "per_axis_topic_pattern": "float64_per_axis.topic_pattern",
    "multi_array_topic": "float64_multi_array.topic",
    "pose_topic": "pose_stamped.topic",
    "gripper_topic": "pose_stamped.gripper_topic",
    "trajectory_topic": "joint_trajectory.topic",
    "trajectory_time_from_start_s": "joint_trajectory.time_from_start_s",
}


@dataclass(frozen=True)
class SafetyNodeConfig:
    """The node's parameters, validated (pure data: built and tested without a ROS graph).

    Attributes are the parameters of ``schemas/safety_node.yaml`` (descriptions and units there);
    ``adapters`` groups the ``<kind>.<name>`` ones. ``control_rate_hz`` is None when unset (the limits file
    decides). Behaviour settings the core owns (watchdog/e-stop/blend) are validated again by
    ``SupervisorConfig``.
    """

    limits_file: str
    control_rate_hz: float | None
    shadow_mode: bool
    output_adapters: tuple[str, ...]
    adapters: AdapterSettings
    plan_topic: str
    measured_state_topic: str
    measured_state_type: str
    gripper_state_topic: str
    estop_topic: str
    status_topic: str
    watchdog_mode: str
    estop_mode: str
    blend_mode: str
    blend_time_s: float
    diagnostics_period_s: float
    estop_release_hold_s: float = _D("estop_release_hold_s")

    def __post_init__(self) -> None:
        for f in fields(self):  # type, range, choices, relative names: the schema's, one message format
            if f.name in SCHEMA.parameters:
                SCHEMA.check(f.name, getattr(self, f.name))
        if self.measured_state_type == "pose" and self.measured_state_topic == self.gripper_state_topic:
            raise ValueError(
                f"measured_state_topic and gripper_state_topic are both {self.measured_state_topic!r}, but "
                "with measured_state_type 'pose' the first carries PoseStamped and the second JointState"
            )


def config_from_parameters(get: Callable[[str], Any], frame_id: str = "base_link") -> SafetyNodeConfig:
    """Build a :class:`SafetyNodeConfig` from parameter values (``get(name)``; None = not set).

    Args:
        get: parameter getter.
        frame_id: frame of the pose adapter's messages (the limits file's frame_id).

    Raises:
        ValueError: a value is out of range or inconsistent; the message names the parameter.
    """
    v = SCHEMA.validate(get)
    adapters = AdapterSettings(
        pose_frame_id=frame_id, **{f: v[param] for f, param in _ADAPTER_PARAMETERS.items()}
    )
    flat = {f.name: v[f.name] for f in fields(SafetyNodeConfig) if f.name in v}
    return SafetyNodeConfig(**flat, adapters=adapters)


__all__ = ["ADAPTER_KINDS", "SCHEMA", "AdapterSettings", "SafetyNodeConfig", "config_from_parameters"]
