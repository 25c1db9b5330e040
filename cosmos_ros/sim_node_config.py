"""The simulator node's configuration as plain data: its parameters (``schemas/sim_node.yaml``) validated.

Pure (no rclpy, no pybullet): built and tested without a ROS graph. Each parameter's type, range and choices
come from the schema (:mod:`cosmos_ros.parameter_schema`); this module adds what involves several parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cosmos_ros.parameter_schema import ParameterSchema

SCHEMA = ParameterSchema.load("sim_node")
# The setpoint interfaces the sim node consumes: the registry that the schema's command_interfaces names.
INTERFACES = ("float64_per_axis", "float64_multi_array")


@dataclass(frozen=True)
class SimNodeConfig:
    """The sim node's parameters, validated; attributes are those of ``schemas/sim_node.yaml``."""

    config_file: str
    image_size: int
    first_seed: int
    num_episodes: int
    goal: str
    lockstep: bool
    camera_rate_hz: float
    real_time_factor: float
    command_interfaces: tuple[str, ...]
    per_axis_topic_pattern: str
    multi_array_topic: str
    planner_clock_topic: str
    safety_node_name: str
    tick_retry_s: float
    lockstep_timeout_s: float
    state_settle_s: float
    record_dir: str
    exit_when_done: bool
    log_throttle_s: float

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type, range, choices: the schema's, one message format
            SCHEMA.check(f.name, getattr(self, f.name))
        if "{axis}" not in self.per_axis_topic_pattern:
            raise ValueError(
                f"per_axis_topic_pattern must contain '{{axis}}', got {self.per_axis_topic_pattern!r}"
            )
        if self.lockstep and not self.planner_clock_topic:
            raise ValueError("lockstep needs planner_clock_topic (remap the planner's /clock to it)")
        if self.planner_clock_topic == "/clock":
            raise ValueError("planner_clock_topic must not be /clock")


def config_from_parameters(get: Callable[[str], Any]) -> SimNodeConfig:
    """Build a :class:`SimNodeConfig` from parameter values (``get(name)``).

    Raises:
        ValueError: A value is out of range or inconsistent; the message names the parameter.
    """
    v = SCHEMA.validate(get)
    return SimNodeConfig(**{f.name: v[f.name] for f in dataclasses.fields(SimNodeConfig)})


__all__ = ["INTERFACES", "SCHEMA", "SimNodeConfig", "config_from_parameters"]
