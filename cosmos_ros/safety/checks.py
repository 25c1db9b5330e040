"""Checks that reject a plan outright, decided before any arithmetic on its values.

Why reject rather than repair: a plan with NaNs, the wrong axes, the wrong frame or an old stamp says the
planner (or the link) is broken; nothing from it can be trusted, so nothing from it is streamed. The reason
code is machine-readable (counted in diagnostics, published in ``SafetyStatus.reasons``); the message says
what was wrong with which value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cosmos_ros.plan import Plan
from cosmos_ros.safety.limits import SafetyLimits

NONFINITE = "nonfinite"
SHAPE = "shape"
AXES = "axes"
ACTION_SPACE = "action_space"
FRAME = "frame"
STALE = "stale"
PLAN_ID = "plan_id"
ROTATION = "rotation"
PLAN_LENGTH = "plan_length"
SESSION = "planner_session"
# Decided by the supervisor's state, not by the plan: e-stop latched, or not activated.
ESTOP = "estop"
INACTIVE = "inactive"
# The latest measured state is implausible (see SafetySupervisor.set_measured): nothing streams.
MEASURED_STATE = "measured_state"
REJECT_REASONS = (
    NONFINITE,
    SHAPE,
    AXES,
    ACTION_SPACE,
    FRAME,
    STALE,
    PLAN_ID,
    ROTATION,
    PLAN_LENGTH,
    SESSION,
    ESTOP,
    INACTIVE,
    MEASURED_STATE,
)
# Smallest quaternion norm that can be normalised without amplifying noise into a rotation.
MIN_QUATERNION_NORM = 1e-6


@dataclass(frozen=True)
class Rejection:
    """Why a plan is rejected: one reason code from ``REJECT_REASONS`` and a human-readable message."""

    reason: str
    message: str

    def __post_init__(self) -> None:
        if self.reason not in REJECT_REASONS:
            raise ValueError(f"reason must be one of {REJECT_REASONS}, got {self.reason!r}")


def check_plan(
    plan: Plan, limits: SafetyLimits, now_s: float, last_plan_id: int | None, last_session_id: int = 0
) -> Rejection | None:
    """Decide whether ``plan`` must be rejected; None if it may be clamped and streamed.

    Checked in this order (the first failing check is reported): action space, frame, axis names, shape,
    length (more than ``limits.max_plan_steps`` steps: rejected before any arithmetic on the values, which
    bounds the work of checking and clamping one plan), finiteness (values, stamps), staleness
    (``|now - stamp_s| > staleness_limit_s``; a stamp far in the future means mismatched clocks and is
    equally untrustworthy), plan id (must be strictly greater than the last accepted one), and for pose
    spaces the quaternions (finite norm > ``MIN_QUATERNION_NORM``).

    Args:
        plan: The received plan.
        limits: Limits of the configured action space.
        now_s: Current time in seconds (same clock as the plan stamps).
        last_plan_id: Id of the last accepted plan, None if none yet.
        last_session_id: Planner session of the last accepted plan (see ``check_sequence``).

    Returns:
        A ``Rejection`` or None.
    """
    if plan.action_space != limits.action_space:
        return Rejection(
            ACTION_SPACE, f"action_space {plan.action_space!r} != configured {limits.action_space!r}"
        )
    if plan.frame_id != limits.frame_id:
        return Rejection(FRAME, f"frame_id {plan.frame_id!r} != configured {limits.frame_id!r}")
    expected = limits.axis_names
    if tuple(plan.axis_names) != expected:
        return Rejection(AXES, f"axis_names {tuple(plan.axis_names)} != configured {expected}")
    try:
        values = np.asarray(plan.values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return Rejection(SHAPE, f"values cannot be read as float64: {exc}")
    if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] != len(expected):
        return Rejection(SHAPE, f"values shape {values.shape}, expected [T >= 1, {len(expected)}]")
    if values.shape[0] > limits.max_plan_steps:
        return Rejection(
            PLAN_LENGTH,
            f"{values.shape[0]} steps > max_plan_steps {limits.max_plan_steps} of the limits file",
        )
    if not np.all(np.isfinite(values)):
        rows, cols = np.nonzero(~np.isfinite(values))
        return Rejection(
            NONFINITE,
            f"{rows.size} non-finite value(s), first at step {rows[0]} axis {expected[cols[0]]!r}: "
            f"{values[rows[0], cols[0]]}",
        )
    for key in ("stamp_s", "t0_s"):
        value = getattr(plan, key)
        if not math.isfinite(value):
            return Rejection(NONFINITE, f"{key} is {value}")
    if not math.isfinite(now_s):
        raise ValueError(f"now_s must be finite, got {now_s}")
    age = now_s - plan.stamp_s
    if abs(age) > limits.staleness_limit_s:
        what = "old" if age > 0 else "in the future"
        return Rejection(
            STALE,
            f"stamp {plan.stamp_s:.6f} is {abs(age):.3f} s {what} (limit {limits.staleness_limit_s:g} s)",
        )
    sequence = check_sequence(plan, last_plan_id, last_session_id)
    if sequence is not None:
        return sequence
    if limits.kind == "pose":
        norms = np.linalg.norm(values[:, 3:7], axis=1)
        bad = np.nonzero(~(norms > MIN_QUATERNION_NORM))[0]
        if bad.size:
            return Rejection(
                ROTATION,
                f"quaternion at step {bad[0]} has norm {norms[bad[0]]:.3g} <= {MIN_QUATERNION_NORM:g}; "
                "it cannot be normalised to a rotation",
            )
    return None


def check_sequence(plan: Plan, last_plan_id: int | None, last_session_id: int) -> Rejection | None:
    """Plan order across planner restarts: which plan is newer.

    A restarted planner starts its ``plan_id`` again at 1 with a larger ``planner_session_id``; its plans
    are newer than anything of the old session (accepted; the old session's plans are rejected from then
    on, so a frozen-and-resumed old planner cannot take over again). Within one session (or with session
    0, unknown) ``plan_id`` must strictly increase. Everything else a plan must pass (staleness, limits)
    applies unchanged, so a new session gains nothing but a fresh id sequence.
    """
    session = plan.planner_session_id
    if session < last_session_id:
        return Rejection(
            SESSION,
            f"planner_session_id {session} is older than the current planner session {last_session_id}",
        )
    if session == last_session_id and last_plan_id is not None and plan.plan_id <= last_plan_id:
        return Rejection(PLAN_ID, f"plan_id {plan.plan_id} does not increase (last accepted {last_plan_id})")
    return None
