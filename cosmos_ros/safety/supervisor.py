"""The safety supervisor: checks and clamps plans, streams limited setpoints, runs watchdog and e-stop.

This is the whole safety behaviour of the safety node with no ROS in it: the node converts messages to
``Plan`` / arrays, calls ``push``/``set_measured``/``tick``/``estop`` with its clock's ``now``, and
publishes what comes back (shadow mode is purely a node concern: it publishes the same setpoints elsewhere).

Outcomes of a plan (never mixed up):

* ``REJECTED``: a check in ``checks.py`` failed (or e-stop latched / not active). Nothing from the plan is
  scheduled; the reason is counted.
* ``CLAMPED``: the plan is scheduled, but the safety layer changes what it asks for. That is decided once,
  on arrival, so ``SafetyStatus`` can be published at once: (1) bounds: positions outside the position
  bounds / workspace box / gripper range, or orientations outside the cone, are clamped (these clamped
  values are what is scheduled); (2) rates: the rate limiter is run over the bounded steps at the plan's
  step period, from the current command (or measured) state; where its output differs from the step the
  plan's own motion exceeds the velocity/acceleration/jerk (or angular velocity) limits. ``max_correction``
  is, per axis, the largest |plan value - value after (1) and (2)|.
* ``ACCEPTED``: neither changed anything (within ``CORRECTION_TOLERANCE``).

Whatever the decision, the streaming limiter enforces the limits again tick by tick (at the control period,
where linear interpolation between steps has corners the step-period estimate cannot see); per-tick
limiting is reported in ``Setpoint.limited_axes``/``reasons`` and in the counters.

Per tick, in order: e-stop or watchdog or plan target -> max step from measured (the target is clamped to
within ``max_step_from_measured`` of the latest measured position, and the limiter treats that window as
position bounds, so the command itself stays inside it with the same braking guarantee, as long as the
measured state does not jump away faster than the limits allow; if it does, the command brakes and moves
back within the rate limits rather than jumping) -> position bounds -> jerk-limited rate limiter (which also
guarantees it can still stop inside the bounds) -> orientation (cone, slerp-limited angular velocity;
orientation has no acceleration/jerk limit).

Pose spaces: linear limits apply per axis (x, y, z), so the Cartesian speed can reach sqrt(3) x the per-axis
limit; quaternions are normalised, sign-aligned step to step, interpolated by nlerp, and streamed with no
sign flips. A soft start from a measured state outside the bounds streams that state and then, following a
plan or holding, moves back inside within the rate limits (decelerate at rest stays put); the bounds
property holds from any start inside the bounds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

import numpy as np

from cosmos_ros.plan import Plan
from cosmos_ros.safety import checks
from cosmos_ros.safety.limits import SafetyLimits
from cosmos_ros.safety.rate_limiter import (
    FLAG_REASONS,
    MotionState,
    RateLimits,
    brake_step,
    clamp_to_cone,
    limit_rotation_step,
    limit_step,
)
from cosmos_ros.safety.scheduler import ChunkScheduler, ScheduledPlan, SchedulerConfig

WATCHDOG_MODES = ("hold", "decelerate")
# A plan value changed by less than this (absolute, in the axis' unit) counts as unchanged.
CORRECTION_TOLERANCE = 1e-9
_QUAT = slice(3, 7)


class Decision(IntEnum):
    """Per-plan decision; values match ``SafetyStatus.DECISION_*``."""

    NONE = 0
    ACCEPTED = 1
    CLAMPED = 2
    REJECTED = 3


class OutputState(IntEnum):
    """What the stream is doing; values 0-4 match ``SafetyStatus.OUTPUT_*``.

    ``WAITING_FOR_STATE`` (core only) means active but no measured state yet, so nothing can be streamed
    (soft start); the node reports it as ``OUTPUT_IDLE`` with a message.
    """

    IDLE = 0
    STREAMING = 1
    HOLDING = 2
    DECELERATING = 3
    ESTOP = 4
    WAITING_FOR_STATE = 5


@dataclass(frozen=True)
class SupervisorConfig:
    """Behaviour of the supervisor beyond the limits.

    Attributes:
        control_rate_hz: Streaming rate in Hz; one ``tick`` advances the limiter by ``1/control_rate_hz``.
            None = the limits file's ``control_rate_hz``.
        watchdog_mode: ``hold`` (track the last commanded position, within the limits) or ``decelerate``
            (brake to rest as fast as the limits allow, then hold) when no plan covers now.
        estop_mode: Same choice while the e-stop is latched.
        blend_mode: ``crossfade`` or ``replace`` (see ``scheduler``).
        blend_time_s: Cross-fade window in seconds.
    """

    control_rate_hz: float | None = None
    watchdog_mode: str = "decelerate"
    estop_mode: str = "decelerate"
    blend_mode: str = "crossfade"
    blend_time_s: float = 0.2

    def __post_init__(self) -> None:
        rate = self.control_rate_hz
        if rate is not None and not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"control_rate_hz must be a number > 0 or None, got {rate!r}")
        for key in ("watchdog_mode", "estop_mode"):
            if getattr(self, key) not in WATCHDOG_MODES:
                raise ValueError(f"{key} must be one of {WATCHDOG_MODES}, got {getattr(self, key)!r}")
        SchedulerConfig(self.blend_mode, self.blend_time_s)  # validates both


@dataclass(frozen=True)
class PlanDecision:
    """What the supervisor decided about one plan (maps onto ``SafetyStatus``).

    Attributes:
        plan_id: Id of the plan.
        decision: ACCEPTED, CLAMPED or REJECTED.
        reasons: Reason codes: one rejection code, or the clamp codes (position_bound, workspace, gripper,
            orientation, velocity, acceleration, jerk).
        message: Human-readable detail.
        axis_names: Column names of ``max_correction``.
        max_correction: ``[D]`` largest |correction| per axis in the axis' unit (zeros if not clamped).
        num_steps: Steps in the plan.
        steps_skipped: Steps whose time was already past on arrival.
        output_state: Output state when the decision was made.
        estop_latched: Whether the e-stop was latched.
        watchdog_active: Whether the watchdog (hold/decelerate) was driving the output.
    """

    plan_id: int
    decision: Decision
    reasons: tuple[str, ...]
    message: str
    axis_names: tuple[str, ...]
    max_correction: np.ndarray
    num_steps: int
    steps_skipped: int
    output_state: OutputState
    estop_latched: bool
    watchdog_active: bool

    @property
    def streamed(self) -> bool:
        """True if the plan was scheduled (ACCEPTED or CLAMPED)."""
        return self.decision in (Decision.ACCEPTED, Decision.CLAMPED)


@dataclass(frozen=True)
class Setpoint:
    """One streamed command.

    Attributes:
        stamp_s: Tick time it is for.
        axis_names: Column names.
        positions: ``[D]`` commanded positions (pose: x y z qx qy qz qw gripper).
        velocities: ``[D]`` commanded velocities (finite differences; feed-forward for controllers).
        state: Output state.
        plan_id: Plan dominating the target (0 in hold/decel/e-stop and at soft start).
        limited_axes: Axes the safety layer changed this tick.
        reasons: Reason codes of those changes (velocity, acceleration, jerk, position_bound, max_step,
            orientation).
    """

    stamp_s: float
    axis_names: tuple[str, ...]
    positions: np.ndarray
    velocities: np.ndarray
    state: OutputState
    plan_id: int = 0
    limited_axes: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class SupervisorCounters:
    """Counters since construction (for diagnostics)."""

    plans_received: int = 0
    plans_accepted: int = 0
    plans_clamped: int = 0
    plans_rejected: int = 0
    rejections_by_reason: Mapping[str, int] = field(default_factory=dict)
    steps_skipped: int = 0
    ticks: int = 0
    setpoints: int = 0
    ticks_limited: int = 0
    limited_by_reason: Mapping[str, int] = field(default_factory=dict)
    watchdog_activations: int = 0
    estops: int = 0


def _check_now(now: float) -> None:
    if not (isinstance(now, (int, float)) and math.isfinite(now)):
        raise ValueError(f"now must be a finite number of seconds, got {now!r}")


class SafetySupervisor:
    """Checks, clamps and streams plans for one action space. Pass the clock in to every method.

    Lifecycle: ``activate(now)`` -> ``set_measured``/``push``/``tick`` ... -> ``deactivate(now)``.
    Nothing happens in the constructor beyond building limit arrays.
    """

    def __init__(self, limits: SafetyLimits, config: SupervisorConfig | None = None) -> None:
        self.limits = limits
        self.config = config or SupervisorConfig()
        rate = self.config.control_rate_hz or limits.control_rate_hz
        self.dt = 1.0 / rate
        self.axis_names = limits.axis_names
        self.rate_limits = RateLimits.from_limits(limits)
        self._pose = limits.kind == "pose"
        orient = limits.orientation
        self._max_angle_step = (
            orient.max_angular_velocity_rad_s * self.dt
            if orient is not None and orient.max_angular_velocity_rad_s is not None
            else None
        )
        self._cone = (
            (np.array(orient.cone_reference_xyzw), float(orient.cone_max_angle_rad))
            if orient is not None and orient.cone_reference_xyzw is not None and orient.cone_max_angle_rad
            else None
        )
        self._scheduler = ChunkScheduler(SchedulerConfig(self.config.blend_mode, self.config.blend_time_s))
        d = len(self.axis_names)
        self._tp = np.zeros(d)
        self._tv = np.zeros(d)
        self._active = False
        self._estop = False
        self._measured: np.ndarray | None = None
        self._command: MotionState | None = None
        self._hold_target: np.ndarray | None = None
        self._state = OutputState.IDLE
        self._last_plan_id: int | None = None
        self._c: Counter[str] = Counter()
        self._rejections: Counter[str] = Counter()
        self._limited: Counter[str] = Counter()
        # Column kinds for clamp reason codes.
        self._bound_reason = []
        for name in self.axis_names:
            if name == "gripper":
                self._bound_reason.append("gripper")
            elif self._pose and name in ("x", "y", "z"):
                self._bound_reason.append("workspace")
            else:
                self._bound_reason.append("position_bound")

    # ------------------------------------------------------------------------------------------ state
    @property
    def active(self) -> bool:
        return self._active

    @property
    def estop_latched(self) -> bool:
        return self._estop

    @property
    def output_state(self) -> OutputState:
        return self._state

    @property
    def watchdog_active(self) -> bool:
        return self._state in (OutputState.HOLDING, OutputState.DECELERATING)

    @property
    def command(self) -> MotionState | None:
        """Last commanded state (copies), None before the first setpoint."""
        c = self._command
        if c is None:
            return None
        return MotionState(c.position.copy(), c.velocity.copy(), c.acceleration.copy())

    @property
    def counters(self) -> SupervisorCounters:
        c = self._c
        return SupervisorCounters(
            plans_received=c["plans_received"],
            plans_accepted=c["plans_accepted"],
            plans_clamped=c["plans_clamped"],
            plans_rejected=c["plans_rejected"],
            rejections_by_reason=MappingProxyType(dict(self._rejections)),
            steps_skipped=c["steps_skipped"],
            ticks=c["ticks"],
            setpoints=c["setpoints"],
            ticks_limited=c["ticks_limited"],
            limited_by_reason=MappingProxyType(dict(self._limited)),
            watchdog_activations=c["watchdog_activations"],
            estops=c["estops"],
        )

    def activate(self, now: float) -> None:
        """Start streaming: the first setpoint will be the measured state (soft start).

        Resets the plan-id sequence (a restarted planner starts again at 1) and any scheduled plans.
        """
        _check_now(now)
        self._active = True
        self._command = None
        self._hold_target = None
        self._last_plan_id = None
        self._scheduler.clear()
        self._state = OutputState.WAITING_FOR_STATE if self._measured is None else OutputState.HOLDING

    def deactivate(self, now: float) -> None:
        """Stop streaming (``tick`` returns None); scheduled plans are dropped. The e-stop latch stays."""
        _check_now(now)
        self._active = False
        self._command = None
        self._hold_target = None
        self._scheduler.clear()
        self._state = OutputState.IDLE

    def set_measured(self, positions: np.ndarray, now: float) -> bool:
        """Latest measured positions ``[D]`` (plan column order; pose: x y z qx qy qz qw gripper).

        Returns:
            False (and keeps the previous measurement) if the array has the wrong shape, is not finite, or
            (pose) has a quaternion that cannot be normalised; True if stored.
        """
        _check_now(now)
        arr = np.asarray(positions, dtype=np.float64)
        if arr.shape != (len(self.axis_names),) or not np.all(np.isfinite(arr)):
            self._c["measured_rejected"] += 1
            return False
        if self._pose:
            n = float(np.linalg.norm(arr[_QUAT]))
            if not n > checks.MIN_QUATERNION_NORM:
                self._c["measured_rejected"] += 1
                return False
            arr = arr.copy()
            arr[_QUAT] /= n
        self._measured = arr.copy()
        if self._active and self._state == OutputState.WAITING_FOR_STATE:
            self._state = OutputState.HOLDING
        return True

    def estop(self, now: float) -> None:
        """Latch the e-stop: scheduled plans are dropped, new plans rejected, output brakes/holds."""
        _check_now(now)
        if not self._estop:
            self._c["estops"] += 1
        self._estop = True
        self._scheduler.clear()
        self._hold_target = None
        if self._active and self._command is not None:
            self._state = OutputState.ESTOP

    def reset_estop(self, now: float) -> bool:
        """Clear a latched e-stop (the only way to clear it). Returns whether it was latched.

        Output continues with the watchdog (hold/decelerate) until a new plan is pushed.
        """
        _check_now(now)
        was = self._estop
        self._estop = False
        self._hold_target = None
        return was

    # ------------------------------------------------------------------------------------------- push
    def push(self, plan: Plan, now: float) -> PlanDecision:
        """Check, clamp and schedule a plan.

        Args:
            plan: The received plan.
            now: Current time (s), same clock as the plan stamps.

        Returns:
            The decision (REJECTED: nothing from the plan will be streamed).
        """
        _check_now(now)
        self._c["plans_received"] += 1
        d = len(self.axis_names)
        num_steps = int(np.shape(plan.values)[0]) if np.ndim(plan.values) == 2 else 0
        if not self._active:
            return self._reject(
                plan, checks.Rejection(checks.INACTIVE, "supervisor is not active"), num_steps
            )
        if self._estop:
            return self._reject(
                plan, checks.Rejection(checks.ESTOP, "e-stop latched; reset it first"), num_steps
            )
        rejection = checks.check_plan(plan, self.limits, now, self._last_plan_id)
        if rejection is not None:
            return self._reject(plan, rejection, num_steps)
        values = np.array(plan.values, dtype=np.float64)
        scheduled_stub = ScheduledPlan(plan.plan_id, plan.t0_s, plan.step_period_s, values)
        skipped = scheduled_stub.steps_before(now)
        if skipped >= num_steps:
            return self._reject(
                plan,
                checks.Rejection(
                    checks.STALE, f"all {num_steps} steps are before now (last at {scheduled_stub.end_s:.6f})"
                ),
                num_steps,
                steps_skipped=skipped,
            )

        reasons: list[str] = []
        bounded = self._bound_values(values, reasons)
        estimate = self._estimate_rates(bounded, plan.step_period_s, max(skipped - 1, 0), reasons)
        correction = np.abs(estimate - values)
        if self._pose:
            # Quaternions: q and -q are the same rotation; measure against the closer sign.
            q_plan, q_est = values[:, _QUAT], estimate[:, _QUAT]
            flip = np.sum(q_plan * q_est, axis=1) < 0
            q_est = np.where(flip[:, None], -q_est, q_est)
            correction[:, _QUAT] = np.abs(q_est - q_plan)
        max_corr = correction[max(skipped - 1, 0) :].max(axis=0) if num_steps else np.zeros(d)
        clamped = bool(np.any(max_corr > CORRECTION_TOLERANCE))
        if not clamped:
            reasons = []
            max_corr = np.zeros(d)

        self._scheduler.push(
            ScheduledPlan(
                plan.plan_id, plan.t0_s, plan.step_period_s, bounded, _QUAT if self._pose else None
            ),
            now,
        )
        self._last_plan_id = plan.plan_id
        self._c["steps_skipped"] += skipped
        self._c["plans_clamped" if clamped else "plans_accepted"] += 1
        unique = tuple(dict.fromkeys(reasons))
        limited = [self.axis_names[i] for i in np.nonzero(max_corr > CORRECTION_TOLERANCE)[0]]
        message = (
            f"clamped {', '.join(unique)} on {', '.join(limited)}" if clamped else "accepted unchanged"
        ) + (f"; skipped {skipped} past step(s)" if skipped else "")
        return PlanDecision(
            plan_id=plan.plan_id,
            decision=Decision.CLAMPED if clamped else Decision.ACCEPTED,
            reasons=unique if clamped else (),
            message=message,
            axis_names=self.axis_names,
            max_correction=max_corr,
            num_steps=num_steps,
            steps_skipped=skipped,
            output_state=self._state,
            estop_latched=self._estop,
            watchdog_active=self.watchdog_active,
        )

    def _reject(
        self, plan: Plan, rejection: checks.Rejection, num_steps: int, steps_skipped: int = 0
    ) -> PlanDecision:
        self._c["plans_rejected"] += 1
        self._rejections[rejection.reason] += 1
        return PlanDecision(
            plan_id=int(plan.plan_id),
            decision=Decision.REJECTED,
            reasons=(rejection.reason,),
            message=rejection.message,
            axis_names=self.axis_names,
            max_correction=np.zeros(len(self.axis_names)),
            num_steps=num_steps,
            steps_skipped=steps_skipped,
            output_state=self._state,
            estop_latched=self._estop,
            watchdog_active=self.watchdog_active,
        )

    def _bound_values(self, values: np.ndarray, reasons: list[str]) -> np.ndarray:
        """Stage (1): position bounds; pose spaces: normalise, sign-align and cone-clamp quaternions."""
        rl = self.rate_limits
        bounded = np.clip(values, rl.min_position, rl.max_position)
        changed = np.any(np.abs(bounded - values) > CORRECTION_TOLERANCE, axis=0)
        for i in np.nonzero(changed)[0]:
            reasons.append(self._bound_reason[i])
        if self._pose:
            q = bounded[:, _QUAT] / np.linalg.norm(bounded[:, _QUAT], axis=1, keepdims=True)
            for k in range(
                1, q.shape[0]
            ):  # sign-align consecutive steps so interpolation takes the short arc
                if float(np.dot(q[k], q[k - 1])) < 0.0:
                    q[k] = -q[k]
            if self._cone is not None:
                ref, angle = self._cone
                for k in range(q.shape[0]):
                    q[k], _ = clamp_to_cone(q[k], ref, angle)
            bounded[:, _QUAT] = q
            original = (
                values[:, _QUAT] * np.where(np.sum(values[:, _QUAT] * q, axis=1) < 0, -1.0, 1.0)[:, None]
            )
            if np.any(np.abs(original - q) > CORRECTION_TOLERANCE):
                reasons.append("orientation")
        return bounded

    def _start_state(self) -> MotionState | None:
        if self._command is not None:
            return self._command
        if self._measured is not None:
            return MotionState.at_rest(self._measured)
        return None

    def _estimate_rates(
        self, bounded: np.ndarray, step_period: float, first: int, reasons: list[str]
    ) -> np.ndarray:
        """Stage (2): run the limiter over the bounded steps at the plan's step period (see module doc)."""
        estimate = bounded.copy()
        state = self._start_state()
        if state is None:
            state = MotionState.at_rest(bounded[first])
        flags_any = 0
        zeros = np.zeros(bounded.shape[1])
        max_angle = self._max_angle_step / self.dt * step_period if self._max_angle_step is not None else None
        q_prev = state.position[_QUAT].copy() if self._pose else None
        for k in range(first, bounded.shape[0]):
            state, flags = limit_step(state, bounded[k], zeros, step_period, self.rate_limits)
            flags_any |= int(np.bitwise_or.reduce(flags))
            estimate[k] = state.position
            if self._pose and q_prev is not None:
                q = bounded[k, _QUAT]
                if max_angle is not None:
                    q, was = limit_rotation_step(q_prev, q, max_angle)
                    if was:
                        reasons.append("orientation")
                estimate[k, _QUAT] = q
                q_prev = q
        for bit, reason in FLAG_REASONS:
            if flags_any & bit:
                reasons.append(reason)
        return estimate

    # ------------------------------------------------------------------------------------------- tick
    def tick(self, now: float) -> Setpoint | None:
        """Compute the setpoint for this control tick (call once per control period).

        Returns:
            The setpoint, or None when inactive (``IDLE``) or, at soft start, while no measured state has
            arrived (``WAITING_FOR_STATE``). ``output_state`` says which.
        """
        _check_now(now)
        self._c["ticks"] += 1
        if not self._active:
            self._state = OutputState.IDLE
            return None
        if self._command is None:
            if self._measured is None:
                self._state = OutputState.WAITING_FOR_STATE
                return None
            # Soft start: the first setpoint is exactly the measured state, at rest.
            self._command = MotionState.at_rest(self._measured)
            self._state = OutputState.ESTOP if self._estop else OutputState.HOLDING
            if not self._estop and self._scheduler.covers(now):
                self._state = OutputState.STREAMING
            return self._emit(now, np.zeros(len(self.axis_names)), 0, (), ())

        prev = self._command
        plan_id = None if self._estop else self._scheduler.target(now, self._tp, self._tv)
        if plan_id is not None:
            mode = "track"
            self._state = OutputState.STREAMING
            self._hold_target = None
        else:
            wd_mode = self.config.estop_mode if self._estop else self.config.watchdog_mode
            if not self._estop and self._state == OutputState.STREAMING:
                self._c["watchdog_activations"] += 1
            if wd_mode == "hold":
                if self._hold_target is None:
                    self._hold_target = prev.position.copy()
                self._tp[:] = self._hold_target
                self._tv[:] = 0.0
                mode = "track"
                self._state = OutputState.ESTOP if self._estop else OutputState.HOLDING
            else:
                mode = "brake"
                if self._estop:
                    self._state = OutputState.ESTOP
                else:
                    self._state = OutputState.HOLDING if prev.is_at_rest() else OutputState.DECELERATING

        reasons: list[str] = []
        limited = np.zeros(len(self.axis_names), dtype=bool)
        if mode == "brake":
            new = brake_step(prev, self.dt, self.rate_limits)
        else:
            rl = self.rate_limits
            lo_tick = hi_tick = None
            if self._measured is not None:
                lo = self._measured - rl.max_step_from_measured
                hi = self._measured + rl.max_step_from_measured
                # The command itself is kept within the window by the limiter's braking guarantee.
                lo_tick = np.maximum(rl.min_position, lo)
                hi_tick = np.minimum(rl.max_position, hi)
                if self._pose:
                    lo_tick[_QUAT] = rl.min_position[_QUAT]
                    hi_tick[_QUAT] = rl.max_position[_QUAT]
                stepped = (self._tp < lo) | (self._tp > hi)
                if self._pose:
                    stepped[_QUAT] = False
                if stepped.any():
                    np.clip(self._tp, lo, hi, out=self._tp, where=stepped)
                    self._tv[stepped] = 0.0  # a clamped target stands still: no feed-forward past it
                    limited |= stepped
                    reasons.append("max_step")
            out_of_bounds = (self._tp < rl.min_position) | (self._tp > rl.max_position)
            if out_of_bounds.any():
                np.clip(self._tp, rl.min_position, rl.max_position, out=self._tp)
                self._tv[out_of_bounds] = 0.0
                limited |= out_of_bounds
                reasons.append("position_bound")
            new, flags = limit_step(prev, self._tp, self._tv, self.dt, rl, lo_tick, hi_tick)
            if flags.any():
                limited |= flags != 0
                combined = int(np.bitwise_or.reduce(flags))
                reasons.extend(r for bit, r in FLAG_REASONS if combined & bit)
        if self._pose:
            q_prev = prev.position[_QUAT]
            q_target = self._tp[_QUAT] if mode == "track" else q_prev
            q_target = q_target / np.linalg.norm(q_target)
            if self._cone is not None:
                q_target, _ = clamp_to_cone(q_target, *self._cone)
            if self._max_angle_step is not None:
                q_new, was = limit_rotation_step(q_prev, q_target, self._max_angle_step)
                if was:
                    limited[_QUAT] = True
                    reasons.append("orientation")
            else:
                q_new = q_target if float(np.dot(q_prev, q_target)) >= 0 else -q_target
            # Orientation is not part of the linear model: store the quaternion, zero its rates.
            new.position[_QUAT] = q_new
            new.velocity[_QUAT] = 0.0
            new.acceleration[_QUAT] = 0.0
        velocities = (new.position - prev.position) / self.dt
        self._command = new
        if mode == "brake" and not self._estop and new.is_at_rest():
            self._state = OutputState.HOLDING
        names = tuple(self.axis_names[i] for i in np.nonzero(limited)[0]) if limited.any() else ()
        unique = tuple(dict.fromkeys(reasons))
        return self._emit(now, velocities, plan_id or 0, names, unique)

    def _emit(
        self,
        now: float,
        velocities: np.ndarray,
        plan_id: int,
        limited_axes: tuple[str, ...],
        reasons: tuple[str, ...],
    ) -> Setpoint:
        assert self._command is not None
        self._c["setpoints"] += 1
        if limited_axes:
            self._c["ticks_limited"] += 1
            for r in reasons:
                self._limited[r] += 1
        return Setpoint(
            stamp_s=now,
            axis_names=self.axis_names,
            positions=self._command.position.copy(),
            velocities=velocities,
            state=self._state,
            plan_id=plan_id,
            limited_axes=limited_axes,
            reasons=reasons,
        )
