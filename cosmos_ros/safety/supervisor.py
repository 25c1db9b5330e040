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
# Stands in for "no limit" inside plausibility arithmetic only (finite, so no inf * 0 NaN).
_UNLIMITED = 1e300


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
        estop_mode: While the e-stop is latched both modes only brake: a moving command brakes to rest as
            fast as the limits allow, a command at rest is frozen (bit for bit) until the reset; neither
            tracks a target or the measured state. (``hold`` used to track the latch position through the
            max-step window, which walked the command toward a measured state that moved; see issue 9.)
        blend_mode: ``crossfade`` or ``replace`` (see ``scheduler``).
        blend_time_s: Cross-fade window in seconds.
        estop_release_hold_s: Seconds (> 0) that must pass after the last *true* e-stop input before a
            reset is accepted, on top of the input having gone false. For an e-stop input that is published
            periodically it must exceed the publishing period, so a reset between two true messages of a
            still-pressed stop is refused.
    """

    control_rate_hz: float | None = None
    watchdog_mode: str = "decelerate"
    estop_mode: str = "decelerate"
    blend_mode: str = "crossfade"
    blend_time_s: float = 0.2
    estop_release_hold_s: float = 0.5

    def __post_init__(self) -> None:
        rate = self.control_rate_hz
        if rate is not None and not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"control_rate_hz must be a number > 0 or None, got {rate!r}")
        for key in ("watchdog_mode", "estop_mode"):
            if getattr(self, key) not in WATCHDOG_MODES:
                raise ValueError(f"{key} must be one of {WATCHDOG_MODES}, got {getattr(self, key)!r}")
        SchedulerConfig(self.blend_mode, self.blend_time_s)  # validates both
        hold = self.estop_release_hold_s
        if not (
            isinstance(hold, (int, float)) and not isinstance(hold, bool) and math.isfinite(hold) and hold > 0
        ):
            raise ValueError(f"estop_release_hold_s must be a finite number of seconds > 0, got {hold!r}")


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
class EstopReset:
    """Answer to a reset request.

    Attributes:
        cleared: True if no e-stop is latched after the call (cleared now, or was not latched).
        was_latched: Whether it was latched before the call.
        message: Why it was refused, or what happened.
    """

    cleared: bool
    was_latched: bool
    message: str


@dataclass(frozen=True)
class PlanBasis:
    """What checking a plan depends on in the supervisor's state, copied under the caller's lock.

    Attributes:
        start: Command (or measured) state the rate estimate starts from; None before any state.
        last_plan_id: Id of the last accepted plan (None if none), for the early plan-id check.
        session_id: Planner session of the last accepted plan.
    """

    start: MotionState | None
    last_plan_id: int | None
    session_id: int


@dataclass(frozen=True)
class PreparedPlan:
    """A plan after the expensive part of ``push`` (checks, bounds, rate estimate); see ``prepare``.

    Attributes:
        plan: The plan.
        num_steps: Steps in the plan.
        rejection: The check that failed, or None.
        bounded: ``[T, D]`` bounded values to schedule (None if rejected).
        reasons: Clamp reason codes (empty if unchanged).
        max_correction: ``[D]`` per-axis largest correction.
        steps_skipped: Steps already past when it was prepared.
    """

    plan: Plan
    num_steps: int
    rejection: checks.Rejection | None
    bounded: np.ndarray | None = None
    reasons: tuple[str, ...] = ()
    max_correction: np.ndarray | None = None
    steps_skipped: int = 0


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
    measured_rejected_by_reason: Mapping[str, int] = field(default_factory=dict)
    estop_resets_refused: int = 0


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
        self._session_id = 0
        self._estop_input = False
        self._estop_last_true_s: float | None = None
        self._measured_problem = ""
        self._jump_ref: tuple[np.ndarray, float] | None = None
        self._measured_rejections: Counter[str] = Counter()
        arrays = limits.column_arrays(_UNLIMITED)
        by_name = {a.name: a.measured_plausibility_margin for a in limits.axes}
        margin = np.array([_UNLIMITED if by_name.get(n) is None else by_name[n] for n in self.axis_names])
        self._plausible_lo = arrays["min_position"] - margin
        self._plausible_hi = arrays["max_position"] + margin
        self._jump_speed = (
            arrays["max_velocity"] * limits.measured_max_speed_factor
            if limits.measured_max_speed_factor is not None
            else None
        )
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
            measured_rejected_by_reason=MappingProxyType(dict(self._measured_rejections)),
            estop_resets_refused=c["estop_resets_refused"],
        )

    @property
    def measured_problem(self) -> str:
        """Why the latest measured state was refused as implausible ("" when it is plausible)."""
        return self._measured_problem

    def activate(self, now: float) -> None:
        """Start streaming: the first setpoint will be the measured state (soft start).

        Resets the plan-id sequence (a restarted planner starts again at 1) and any scheduled plans.
        """
        _check_now(now)
        self._active = True
        self._command = None
        self._hold_target = None
        self._last_plan_id = None
        self._session_id = 0
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

        Implausible states are refused and stop the stream (issue 9, defect 5): a position further outside
        the bounds than the axis' ``measured_plausibility_margin``, or (``measured_max_speed_factor``) a
        jump from the previous sample faster than that factor x ``max_velocity`` over the elapsed time plus
        one control period. Then nothing streams (``tick`` returns None, state ``WAITING_FOR_STATE``,
        ``measured_problem`` says why), scheduled plans are dropped, new plans are rejected
        (``measured_state``), and the next plausible state starts the stream again with a soft start there.
        A refused jump still becomes the reference for the next sample, so a state that really moved is
        accepted once two consecutive samples agree.

        Returns:
            False if refused: the wrong shape, not finite, (pose) a quaternion that cannot be normalised
            (these keep the previous measurement), or implausible (see above); True if stored.
        """
        _check_now(now)
        arr = np.asarray(positions, dtype=np.float64)
        if arr.shape != (len(self.axis_names),) or not np.all(np.isfinite(arr)):
            return self._refuse_measured("invalid")
        if self._pose:
            n = float(np.linalg.norm(arr[_QUAT]))
            if not n > checks.MIN_QUATERNION_NORM:
                return self._refuse_measured("invalid")
            arr = arr.copy()
            arr[_QUAT] /= n
        problem = self._implausibility(arr, now)
        if problem is not None:
            reason, message = problem
            self._measured_problem = message
            self._measured = None
            self._command = None  # the next plausible state starts again with a soft start
            self._hold_target = None
            self._scheduler.clear()
            if self._active:
                self._state = OutputState.WAITING_FOR_STATE
            return self._refuse_measured(reason)
        self._measured_problem = ""
        self._measured = arr.copy()
        if self._active and self._state == OutputState.WAITING_FOR_STATE:
            self._state = OutputState.HOLDING
        return True

    def _refuse_measured(self, reason: str) -> bool:
        self._c["measured_rejected"] += 1
        self._measured_rejections[reason] += 1
        return False

    def _implausibility(self, arr: np.ndarray, now: float) -> tuple[str, str] | None:
        """(reason, message) if ``arr`` cannot be a real measured state; updates the jump reference."""
        outside = (arr < self._plausible_lo) | (arr > self._plausible_hi)
        if outside.any():
            i = int(np.nonzero(outside)[0][0])
            self._jump_ref = None  # an absurd value is no reference for the next sample
            return "implausible", (
                f"measured {self.axis_names[i]} = {arr[i]:.6g} is outside the plausible range "
                f"[{self._plausible_lo[i]:.6g}, {self._plausible_hi[i]:.6g}] (bounds +- "
                "measured_plausibility_margin)"
            )
        ref, self._jump_ref = self._jump_ref, (arr.copy(), now)
        if self._jump_speed is None or ref is None:
            return None
        elapsed = max(now - ref[1], 0.0)  # /clock jumped back: allow one control period only
        allowed = self._jump_speed * (elapsed + self.dt)
        jump = np.abs(arr - ref[0])
        if self._pose:
            jump[_QUAT] = 0.0  # orientation has no linear speed limit here
        too_fast = jump > allowed
        if not too_fast.any():
            return None
        i = int(np.nonzero(too_fast)[0][0])
        return "implausible_jump", (
            f"measured {self.axis_names[i]} jumped {jump[i]:.6g} in {elapsed:.4f} s, more than "
            f"{allowed[i]:.6g} (measured_max_speed_factor x max_velocity x (elapsed + one control period))"
        )

    def estop(self, now: float) -> None:
        """An e-stop input of *true*: latch the e-stop (scheduled plans are dropped, new plans rejected,
        output brakes to rest and stays there) and remember the time for ``reset_estop``."""
        _check_now(now)
        self._estop_input = True
        self._estop_last_true_s = now
        if not self._estop:
            self._c["estops"] += 1
        self._estop = True
        self._scheduler.clear()
        self._hold_target = None
        if self._active and self._command is not None:
            self._state = OutputState.ESTOP

    def estop_input_released(self, now: float) -> None:
        """An e-stop input of *false*: the stop device is released. Never clears a latch by itself."""
        _check_now(now)
        self._estop_input = False

    def reset_estop(self, now: float) -> EstopReset:
        """Clear a latched e-stop (the only way to clear it), if the stop device is released.

        Refused (issue 9, defect 1) while the last e-stop input was true, and until
        ``estop_release_hold_s`` after the last true input (if ``now`` is before that input, the clock
        jumped back: the hold restarts from ``now``). After a reset the output continues with the watchdog
        (hold/decelerate) until a new plan is pushed.
        """
        _check_now(now)
        was = self._estop
        if not was:
            return EstopReset(True, False, "e-stop was not latched")
        hold = self.config.estop_release_hold_s
        refusal = None
        if self._estop_input:
            refusal = "the e-stop input is still true; release the stop device first"
        elif self._estop_last_true_s is not None:
            if now < self._estop_last_true_s:
                self._estop_last_true_s = now
            since = now - self._estop_last_true_s
            if since < hold:
                refusal = (
                    f"the e-stop input was true {since:.3f} s ago; a reset needs it released for "
                    f"estop_release_hold_s = {hold:g} s"
                )
        if refusal is not None:
            self._c["estop_resets_refused"] += 1
            return EstopReset(False, True, refusal)
        self._estop = False
        self._hold_target = None
        return EstopReset(True, True, "e-stop cleared; the output holds/decelerates until a new plan arrives")

    # ------------------------------------------------------------------------------------------- push
    def push(self, plan: Plan, now: float) -> PlanDecision:
        """Check, clamp and schedule a plan: ``commit(prepare(plan, now), now)``.

        Args:
            plan: The received plan.
            now: Current time (s), same clock as the plan stamps.

        Returns:
            The decision (REJECTED: nothing from the plan will be streamed).
        """
        return self.commit(self.prepare(plan, now), now)

    def basis(self) -> PlanBasis:
        """Copies of the state ``prepare`` depends on; take it under the lock that guards ``tick``."""
        start = self._start_state()
        if start is not None:
            start = MotionState(start.position.copy(), start.velocity.copy(), start.acceleration.copy())
        return PlanBasis(start, self._last_plan_id, self._session_id)

    def prepare(self, plan: Plan, now: float, basis: PlanBasis | None = None) -> PreparedPlan:
        """The expensive part of ``push``: checks, bounds and the rate estimate. Changes no state.

        Why split: checking and clamping is O(steps) Python work (up to ``max_plan_steps``). A node runs it
        outside the lock that its control tick takes, so it never delays a tick (issue 9, defect 2); only
        ``commit`` (O(1) besides a copy) runs under the lock.

        Args:
            plan: The received plan.
            now: Current time (s).
            basis: ``basis()`` taken under the caller's lock; None = take it now (single-threaded use).
        """
        _check_now(now)
        basis = basis if basis is not None else self.basis()
        num_steps = int(np.shape(plan.values)[0]) if np.ndim(plan.values) == 2 else 0
        rejection = checks.check_plan(plan, self.limits, now, basis.last_plan_id, basis.session_id)
        if rejection is not None:
            return PreparedPlan(plan, num_steps, rejection)
        values = np.array(plan.values, dtype=np.float64)
        skipped = ScheduledPlan(plan.plan_id, plan.t0_s, plan.step_period_s, values).steps_before(now)
        if skipped >= num_steps:
            return PreparedPlan(plan, num_steps, self._stale(num_steps, plan, values), steps_skipped=skipped)
        reasons: list[str] = []
        bounded = self._bound_values(values, reasons)
        estimate = self._estimate_rates(
            bounded, plan.step_period_s, max(skipped - 1, 0), reasons, basis.start
        )
        correction = np.abs(estimate - values)
        if self._pose:
            # Quaternions: q and -q are the same rotation; measure against the closer sign.
            q_plan, q_est = values[:, _QUAT], estimate[:, _QUAT]
            flip = np.sum(q_plan * q_est, axis=1) < 0
            q_est = np.where(flip[:, None], -q_est, q_est)
            correction[:, _QUAT] = np.abs(q_est - q_plan)
        max_corr = correction[max(skipped - 1, 0) :].max(axis=0)
        if not np.any(max_corr > CORRECTION_TOLERANCE):
            reasons, max_corr = [], np.zeros(len(self.axis_names))
        return PreparedPlan(plan, num_steps, None, bounded, tuple(dict.fromkeys(reasons)), max_corr, skipped)

    def _stale(self, num_steps: int, plan: Plan, values: np.ndarray) -> checks.Rejection:
        end = ScheduledPlan(plan.plan_id, plan.t0_s, plan.step_period_s, values).end_s
        return checks.Rejection(checks.STALE, f"all {num_steps} steps are before now (last at {end:.6f})")

    def commit(self, prepared: PreparedPlan, now: float) -> PlanDecision:
        """Schedule a prepared plan, re-checking what may have changed since ``prepare``.

        Re-checked here (under the caller's lock): active, e-stop, measured state plausible, plan id still
        increasing (another plan may have been committed meanwhile), and steps left after ``now``.
        """
        _check_now(now)
        self._c["plans_received"] += 1
        plan, num_steps = prepared.plan, prepared.num_steps
        if not self._active:
            return self._reject(
                plan, checks.Rejection(checks.INACTIVE, "supervisor is not active"), num_steps
            )
        if self._estop:
            return self._reject(
                plan, checks.Rejection(checks.ESTOP, "e-stop latched; reset it first"), num_steps
            )
        if self._measured_problem:
            return self._reject(
                plan, checks.Rejection(checks.MEASURED_STATE, self._measured_problem), num_steps
            )
        if prepared.rejection is not None:
            return self._reject(plan, prepared.rejection, num_steps, steps_skipped=prepared.steps_skipped)
        sequence = checks.check_sequence(plan, self._last_plan_id, self._session_id)
        if sequence is not None:  # another plan may have been committed since prepare
            return self._reject(plan, sequence, num_steps)
        assert prepared.bounded is not None and prepared.max_correction is not None
        scheduled = ScheduledPlan(
            plan.plan_id, plan.t0_s, plan.step_period_s, prepared.bounded, _QUAT if self._pose else None
        )
        skipped = scheduled.steps_before(now)
        if skipped >= num_steps:
            return self._reject(
                plan, self._stale(num_steps, plan, prepared.bounded), num_steps, steps_skipped=skipped
            )
        self._scheduler.push(scheduled, now)
        self._last_plan_id = plan.plan_id
        self._session_id = plan.planner_session_id
        self._c["steps_skipped"] += skipped
        clamped = bool(prepared.reasons)
        self._c["plans_clamped" if clamped else "plans_accepted"] += 1
        max_corr = prepared.max_correction
        limited = [self.axis_names[i] for i in np.nonzero(max_corr > CORRECTION_TOLERANCE)[0]]
        message = (
            f"clamped {', '.join(prepared.reasons)} on {', '.join(limited)}"
            if clamped
            else "accepted unchanged"
        ) + (f"; skipped {skipped} past step(s)" if skipped else "")
        return PlanDecision(
            plan_id=plan.plan_id,
            decision=Decision.CLAMPED if clamped else Decision.ACCEPTED,
            reasons=prepared.reasons,
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
        self,
        bounded: np.ndarray,
        step_period: float,
        first: int,
        reasons: list[str],
        start: MotionState | None,
    ) -> np.ndarray:
        """Stage (2): run the limiter over the bounded steps at the plan's step period (see module doc)."""
        estimate = bounded.copy()
        state = start
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

        Four steps: choose what drives the output (plan target, watchdog or e-stop), move the linear axes
        (brake, or track the target through the max-step window, the bounds and the rate limiter), move the
        orientation (pose spaces), and emit.

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
            return self._soft_start(now)
        prev = self._command
        mode, plan_id = self._choose_mode(now, prev)
        reasons: list[str] = []
        limited = np.zeros(len(self.axis_names), dtype=bool)
        if mode == "brake":
            new = brake_step(prev, self.dt, self.rate_limits)
        else:
            new = self._track_step(prev, limited, reasons)
        if self._pose:
            self._step_orientation(prev, new, mode == "track", limited, reasons)
        velocities = (new.position - prev.position) / self.dt
        self._command = new
        if mode == "brake" and not self._estop and new.is_at_rest():
            self._state = OutputState.HOLDING
        names = tuple(self.axis_names[i] for i in np.nonzero(limited)[0]) if limited.any() else ()
        unique = tuple(dict.fromkeys(reasons))
        return self._emit(now, velocities, plan_id or 0, names, unique)

    def _soft_start(self, now: float) -> Setpoint | None:
        """First tick after activation: wait for a measured state, then emit exactly it, at rest."""
        if self._measured is None:
            self._state = OutputState.WAITING_FOR_STATE
            return None
        self._command = MotionState.at_rest(self._measured)
        self._state = OutputState.ESTOP if self._estop else OutputState.HOLDING
        if not self._estop and self._scheduler.covers(now):
            self._state = OutputState.STREAMING
        return self._emit(now, np.zeros(len(self.axis_names)), 0, (), ())

    def _choose_mode(self, now: float, prev: MotionState) -> tuple[str, int | None]:
        """Step 1: what drives the output this tick; sets ``_state`` and, when tracking, ``_tp``/``_tv``.

        Returns:
            ``("track", plan_id)`` for a plan target, ``("track", None)`` for the hold watchdog,
            ``("brake", None)`` for a latched e-stop or the decelerate watchdog.
        """
        plan_id = None if self._estop else self._scheduler.target(now, self._tp, self._tv)
        if plan_id is not None:
            self._state = OutputState.STREAMING
            self._hold_target = None
            return "track", plan_id
        if self._estop:
            # Latched: only brake (issue 9, defect 4). Whatever estop_mode says, nothing is tracked, neither
            # a target nor the measured state; at rest the command is frozen bit for bit.
            self._state = OutputState.ESTOP
            return "brake", None
        if self._state == OutputState.STREAMING:
            self._c["watchdog_activations"] += 1
        if self.config.watchdog_mode == "hold":
            if self._hold_target is None:
                self._hold_target = prev.position.copy()
            self._tp[:] = self._hold_target
            self._tv[:] = 0.0
            self._state = OutputState.HOLDING
            return "track", None
        self._state = OutputState.HOLDING if prev.is_at_rest() else OutputState.DECELERATING
        return "brake", None

    def _track_step(self, prev: MotionState, limited: np.ndarray, reasons: list[str]) -> MotionState:
        """Step 2 (tracking): clamp the target to the max-step window and the bounds, then rate-limit.

        Marks the axes it changes in ``limited`` and appends their reason codes to ``reasons``.
        """
        rl = self.rate_limits
        lo_tick, hi_tick = self._clamp_target_to_measured(limited, reasons)
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
        return new

    def _clamp_target_to_measured(
        self, limited: np.ndarray, reasons: list[str]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Clamp the target to within ``max_step_from_measured`` of the measured position.

        Returns:
            The window intersected with the position bounds (quaternion columns left at their bounds), for
            the limiter to treat as position bounds; ``(None, None)`` before any measured state.
        """
        if self._measured is None:
            return None, None
        rl = self.rate_limits
        lo = self._measured - rl.max_step_from_measured
        hi = self._measured + rl.max_step_from_measured
        # The command itself is kept within the window by the limiter's braking guarantee.
        lo_tick = np.maximum(rl.min_position, lo)
        hi_tick = np.minimum(rl.max_position, hi)
        stepped = (self._tp < lo) | (self._tp > hi)
        if self._pose:
            lo_tick[_QUAT] = rl.min_position[_QUAT]
            hi_tick[_QUAT] = rl.max_position[_QUAT]
            stepped[_QUAT] = False
        if stepped.any():
            np.clip(self._tp, lo, hi, out=self._tp, where=stepped)
            self._tv[stepped] = 0.0  # a clamped target stands still: no feed-forward past it
            limited |= stepped
            reasons.append("max_step")
        return lo_tick, hi_tick

    def _step_orientation(
        self, prev: MotionState, new: MotionState, track: bool, limited: np.ndarray, reasons: list[str]
    ) -> None:
        """Step 3 (pose spaces): cone-clamp the target quaternion and limit the rotation step, into ``new``.

        When braking (``track`` False) the target is the previous orientation, so it stays put.
        """
        q_prev = prev.position[_QUAT]
        q_target = self._tp[_QUAT] if track else q_prev
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
