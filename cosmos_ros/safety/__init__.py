"""Pure-Python core of the safety-bounds node (no rclpy): limits, checks, clamps, scheduling, supervisor.

Public API (see each module for why it is built this way)::

    from cosmos_ros.safety import load_limits, SafetySupervisor, SupervisorConfig

    limits = load_limits("config/limits/arm7_joints.yaml")
    sup = SafetySupervisor(limits, SupervisorConfig(watchdog_mode="decelerate"))
    sup.activate(now)
    sup.set_measured(joint_positions, now)
    decision = sup.push(plan, now)          # PlanDecision: ACCEPTED / CLAMPED / REJECTED + reasons
    setpoint = sup.tick(now)                # Setpoint | None, once per control period
    sup.estop(now); sup.reset_estop(now)
    sup.counters                            # SupervisorCounters for diagnostics
"""

from cosmos_ros.safety.checks import REJECT_REASONS, Rejection, check_plan
from cosmos_ros.safety.limits import (
    POSE_AXES,
    AxisLimits,
    LimitsError,
    OrientationLimits,
    SafetyLimits,
    limits_from_dict,
    load_limits,
)
from cosmos_ros.safety.rate_limiter import MotionState, RateLimits, brake_step, clamp_positions, limit_step
from cosmos_ros.safety.scheduler import ChunkScheduler, ScheduledPlan, SchedulerConfig
from cosmos_ros.safety.supervisor import (
    Decision,
    OutputState,
    PlanDecision,
    SafetySupervisor,
    Setpoint,
    SupervisorConfig,
    SupervisorCounters,
)

__all__ = [
    "POSE_AXES",
    "REJECT_REASONS",
    "AxisLimits",
    "ChunkScheduler",
    "Decision",
    "LimitsError",
    "MotionState",
    "OrientationLimits",
    "OutputState",
    "PlanDecision",
    "RateLimits",
    "Rejection",
    "SafetyLimits",
    "SafetySupervisor",
    "ScheduledPlan",
    "SchedulerConfig",
    "Setpoint",
    "SupervisorConfig",
    "SupervisorCounters",
    "brake_step",
    "check_plan",
    "clamp_positions",
    "limit_step",
    "limits_from_dict",
    "load_limits",
]
