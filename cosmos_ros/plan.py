"""The plan: one decoded action chunk, the unit of data between planner and safety node.

Data flows one way: frames -> policy runtime -> ``Plan`` -> safety checks -> setpoints. ``Plan`` is the
pure-Python twin of ``cosmos_ros/msg/ActionSequence`` (see ``cosmos_ros.nodes.conversions`` for the
mapping), so the core can be tested without a ROS graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Plan:
    """A timed, named sequence of setpoints in physical units.

    Attributes:
        plan_id: Strictly increasing per planner instance; consumers reject ids that go backwards.
        stamp_s: Capture time (seconds, ROS clock) of the newest camera frame the plan was conditioned on.
        t0_s: Time step 0 is meant for; step ``k`` is meant for ``t0_s + k * step_period_s``.
        step_period_s: Fixed time between steps, > 0.
        axis_names: Names of the D columns of ``values`` (joint names, or x, y, z, qx, qy, qz, qw, gripper).
        values: ``[T, D]`` float64 array, decoded, physical units (m, rad, gripper units).
        frame_id: Frame poses are expressed in (for joint spaces: the robot base frame).
        action_space: Name of the action-space profile that decoded the values.
        goal: The instruction the plan was conditioned on.
        model_id: Checkpoint path or hub id.
        backend: Runtime backend that produced it (diffusers | fast | tensorrt).
        raw_actions: Optional ``[T, W]`` model-normalised output, for logging only.
        inference_time_s: Wall time of the inference call.
        queue_time_s: Time the newest frame waited before inference started.
        expected_latency_s: Latency the planner expected when it started this plan (p95 of recent plans, node
            clock); 0.0 before the first measurement.
        latency_p95_s: p95 of the planner's inference latency including this plan (node clock).
        prefix_steps: Leading steps conditioned on the previous plan (``d``); 0 when not conditioned.
        planner_session_id: Planner instance that produced the plan (see ``ActionSequence``); 0 = unknown.
    """

    plan_id: int
    stamp_s: float
    t0_s: float
    step_period_s: float
    axis_names: tuple[str, ...]
    values: np.ndarray
    frame_id: str
    action_space: str
    goal: str = ""
    model_id: str = ""
    backend: str = ""
    raw_actions: np.ndarray | None = field(default=None, compare=False)
    inference_time_s: float = 0.0
    queue_time_s: float = 0.0
    expected_latency_s: float = 0.0
    latency_p95_s: float = 0.0
    prefix_steps: int = 0
    planner_session_id: int = 0

    def __post_init__(self) -> None:
        # Shape and period are structural: a Plan that violates them cannot even be described. Finiteness
        # of the values is *not* checked here on purpose: the safety node must be able to receive a plan with
        # NaNs in order to reject and count it (see cosmos_ros.safety.checks).
        if not (isinstance(self.step_period_s, (int, float)) and math.isfinite(self.step_period_s)):
            raise ValueError(f"step_period_s must be a finite number, got {self.step_period_s!r}")
        if self.step_period_s <= 0:
            raise ValueError(f"step_period_s must be > 0, got {self.step_period_s}")
        values = np.asarray(self.values)
        if values.ndim != 2:
            raise ValueError(f"values must be 2-D [steps, axes], got shape {values.shape}")
        if values.shape[1] != len(self.axis_names):
            raise ValueError(
                f"values has {values.shape[1]} columns but axis_names has {len(self.axis_names)} names"
            )
        if self.plan_id < 0:
            raise ValueError(f"plan_id must be >= 0, got {self.plan_id}")
        if self.planner_session_id < 0:
            raise ValueError(f"planner_session_id must be >= 0, got {self.planner_session_id}")

    @property
    def num_steps(self) -> int:
        return int(self.values.shape[0])

    def step_time(self, k: int) -> float:
        """Time step ``k`` is meant for (seconds)."""
        return self.t0_s + k * self.step_period_s

    @property
    def end_time_s(self) -> float:
        """Time of the last step."""
        return self.step_time(self.num_steps - 1)
