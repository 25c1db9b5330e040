"""Conversions between core types and ROS messages: the only place that knows both.

Kept free of node state so both nodes (and the replay/golden tools) share one mapping, and so the mapping is
tested once (test/test_conversions.py) instead of inside each node's tests.
"""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose
from trajectory_msgs.msg import JointTrajectoryPoint

from cosmos_ros.diagnostics import DiagnosticsReport, Level
from cosmos_ros.msg import ActionSequence
from cosmos_ros.plan import Plan

POSE_AXES = ("x", "y", "z", "qx", "qy", "qz", "qw")


def time_to_sec(t: Time) -> float:
    return float(t.sec) + float(t.nanosec) * 1e-9


def sec_to_time(s: float) -> Time:
    if not math.isfinite(s) or s < 0:
        raise ValueError(f"time must be finite and >= 0, got {s}")
    sec = math.floor(s)
    nanosec = round((s - sec) * 1e9)
    if nanosec >= 1_000_000_000:  # rounding carried into the next second
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return Time(sec=int(sec), nanosec=int(nanosec))


def duration_to_sec(d: Duration) -> float:
    return float(d.sec) + float(d.nanosec) * 1e-9


def sec_to_duration(s: float) -> Duration:
    t = sec_to_time(s)
    return Duration(sec=t.sec, nanosec=t.nanosec)


def plan_to_msg(plan: Plan) -> ActionSequence:
    """Build the ActionSequence for a plan (planner side).

    For pose spaces (axes x, y, z, qx, qy, qz, qw[, gripper]) the per-step poses are also published as a
    PoseArray so RViz/Foxglove can show them; the trajectory stays the authoritative copy.
    """
    msg = ActionSequence()
    msg.header.stamp = sec_to_time(plan.stamp_s)
    msg.header.frame_id = plan.frame_id
    msg.plan_id = int(plan.plan_id)
    msg.planner_session_id = int(plan.planner_session_id)
    msg.goal = plan.goal
    msg.action_space = plan.action_space
    msg.model_id = plan.model_id
    msg.backend = plan.backend
    msg.step_period = sec_to_duration(plan.step_period_s)
    msg.trajectory.header.stamp = sec_to_time(plan.t0_s)
    msg.trajectory.header.frame_id = plan.frame_id
    msg.trajectory.joint_names = list(plan.axis_names)
    values = np.asarray(plan.values, dtype=np.float64)
    points = []
    for k in range(values.shape[0]):
        pt = JointTrajectoryPoint()
        pt.positions = values[k].tolist()
        pt.time_from_start = sec_to_duration(k * plan.step_period_s)
        points.append(pt)
    msg.trajectory.points = points

    names = list(plan.axis_names)
    if all(a in names for a in POSE_AXES):
        idx = [names.index(a) for a in POSE_AXES]
        msg.ee_poses.header = msg.header
        poses = []
        for row in values[:, idx]:
            p = Pose()
            p.position.x, p.position.y, p.position.z = float(row[0]), float(row[1]), float(row[2])
            p.orientation.x, p.orientation.y = float(row[3]), float(row[4])
            p.orientation.z, p.orientation.w = float(row[5]), float(row[6])
            poses.append(p)
        msg.ee_poses.poses = poses
        if "gripper" in names:
            msg.gripper = values[:, names.index("gripper")].tolist()

    if plan.raw_actions is not None:
        raw = np.asarray(plan.raw_actions, dtype=np.float32)
        msg.raw_width = int(raw.shape[1]) if raw.ndim == 2 else 0
        msg.raw_actions = raw.reshape(-1).tolist()
    msg.inference_time_s = float(plan.inference_time_s)
    msg.queue_time_s = float(plan.queue_time_s)
    msg.expected_latency_s = float(plan.expected_latency_s)
    msg.latency_p95_s = float(plan.latency_p95_s)
    msg.prefix_steps = int(plan.prefix_steps)
    return msg


def msg_to_plan(msg: ActionSequence) -> Plan:
    """Build a Plan from a received ActionSequence (safety side).

    Raises:
        ValueError: the message cannot describe a plan at all (ragged points, no points, step period <= 0).
            The safety node counts this as a ``shape`` rejection. NaN/Inf values are passed through on
            purpose so the safety checks can reject and count them as ``nonfinite``.
    """
    names = tuple(msg.trajectory.joint_names)
    points = msg.trajectory.points
    if len(points) == 0:
        raise ValueError("plan has no trajectory points")
    widths = {len(p.positions) for p in points}
    if widths != {len(names)}:
        raise ValueError(f"trajectory points have {sorted(widths)} positions but {len(names)} joint_names")
    values = np.array([p.positions for p in points], dtype=np.float64).reshape(len(points), len(names))
    raw = None
    if msg.raw_width > 0 and len(msg.raw_actions) % msg.raw_width == 0:
        raw = np.asarray(msg.raw_actions, dtype=np.float32).reshape(-1, msg.raw_width)
    return Plan(
        plan_id=int(msg.plan_id),
        planner_session_id=int(msg.planner_session_id),
        stamp_s=time_to_sec(msg.header.stamp),
        t0_s=time_to_sec(msg.trajectory.header.stamp),
        step_period_s=duration_to_sec(msg.step_period),
        axis_names=names,
        values=values,
        frame_id=msg.header.frame_id,
        action_space=msg.action_space,
        goal=msg.goal,
        model_id=msg.model_id,
        backend=msg.backend,
        raw_actions=raw,
        inference_time_s=float(msg.inference_time_s),
        queue_time_s=float(msg.queue_time_s),
        expected_latency_s=float(msg.expected_latency_s),
        latency_p95_s=float(msg.latency_p95_s),
        prefix_steps=int(msg.prefix_steps),
    )


_LEVELS = {
    Level.OK: DiagnosticStatus.OK,
    Level.WARN: DiagnosticStatus.WARN,
    Level.ERROR: DiagnosticStatus.ERROR,
}


def report_to_status(report: DiagnosticsReport, name: str, hardware_id: str) -> DiagnosticStatus:
    """A core diagnostics report as a ``diagnostic_msgs/DiagnosticStatus`` (levels are bytes there)."""
    return DiagnosticStatus(
        level=_LEVELS[report.level],
        name=name,
        message=report.message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in report.values.items()],
    )
