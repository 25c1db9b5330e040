"""Stateless clamps: position bounds, a jerk-limited rate limiter that can always stop inside the bounds,
and orientation limits (slerp-limited angular velocity, orientation cone).

Why this design (compare libfranka ``rate_limiting.h`` and ros2_control ``joint_limits_helpers.hpp``): the
clamp is a small function of (limits, previous command, target, dt) with no hidden state, so it can be tested
in isolation and reused for the per-plan estimate and for streaming.

The discrete model is the finite-difference model a checker of the streamed setpoints uses::

    a[k] = a[k-1] + j[k] * dt      |j| <= max_jerk
    v[k] = v[k-1] + a[k] * dt      |a| <= max_acceleration
    p[k] = p[k-1] + v[k] * dt      |v| <= max_velocity,  min_position <= p <= max_position

so ``(p[k]-p[k-1])/dt`` is the velocity the limiter chose, and so on; the limits hold for the setpoints as
published, not for some internal continuous curve.

Stopping inside the bounds: a limiter that respects velocity, acceleration and jerk can still be trapped,
moving toward a bound too fast to stop before it. The limiter therefore keeps the invariant "the *braking
law* (``braking_accel``), applied from the current state, comes to rest inside the bounds without exceeding
the velocity limit". Each tick it computes the tracking command, checks that the braking law from the
resulting state is still safe (a cheap conservative bound first, an exact discrete simulation of the braking
law only near a bound), and otherwise applies the braking law itself. Because the braking law is a state
feedback, the braking trajectory from the next state is exactly the tail of the one checked, so the
invariant carries over tick to tick (bit for bit: the same function computes both).

Time: the limiter advances exactly one control period ``dt`` per call. Setpoints are a discrete stream
consumed at the control rate; using the measured wall-clock interval instead would let timer jitter loosen
the limits (a late tick would permit a larger step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cosmos_ros.safety.limits import QUATERNION_AXES, SafetyLimits

# Stands in for "no limit" inside the arithmetic only (finite, so no inf*0 = NaN); limits objects keep None.
UNLIMITED = 1e12
# Bits of the per-axis ``limited`` flags returned by ``limit_step``.
LIMITED_VELOCITY = 1
LIMITED_ACCELERATION = 2
LIMITED_JERK = 4
LIMITED_BRAKING = 8  # the braking law overrode tracking to stay able to stop inside the position bounds
FLAG_REASONS = (
    (LIMITED_VELOCITY, "velocity"),
    (LIMITED_ACCELERATION, "acceleration"),
    (LIMITED_JERK, "jerk"),
    (LIMITED_BRAKING, "position_bound"),
)
# Share of max_acceleration the tracking law plans its approach with (the rest absorbs the jerk ramp).
_TRACKING_ACCEL_SHARE = 0.5
_MAX_SIM_STEPS = 20000


@dataclass(frozen=True)
class RateLimits:
    """Per-column limit arrays ``[D]`` for the vectorised limiter (``UNLIMITED`` where None).

    Build with ``RateLimits.from_limits``; quaternion columns of pose spaces are unlimited here.
    """

    min_position: np.ndarray
    max_position: np.ndarray
    max_velocity: np.ndarray
    max_acceleration: np.ndarray
    max_jerk: np.ndarray
    max_step_from_measured: np.ndarray

    def __post_init__(self) -> None:
        shape = self.min_position.shape
        for name in (
            "max_position",
            "max_velocity",
            "max_acceleration",
            "max_jerk",
            "max_step_from_measured",
        ):
            arr = getattr(self, name)
            if arr.shape != shape or arr.ndim != 1:
                raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} must be finite (UNLIMITED stands in for no limit), got {arr}")
        for name in ("max_velocity", "max_acceleration", "max_jerk", "max_step_from_measured"):
            if np.any(getattr(self, name) <= 0):
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if np.any(self.min_position > self.max_position):
            raise ValueError(f"min_position > max_position: {self.min_position} > {self.max_position}")

    @classmethod
    def from_limits(cls, limits: SafetyLimits) -> RateLimits:
        arrays = limits.column_arrays(UNLIMITED)
        return cls(**arrays)

    @classmethod
    def uniform(
        cls,
        num_axes: int,
        *,
        min_position: float = -UNLIMITED,
        max_position: float = UNLIMITED,
        max_velocity: float = UNLIMITED,
        max_acceleration: float = UNLIMITED,
        max_jerk: float = UNLIMITED,
        max_step_from_measured: float = UNLIMITED,
    ) -> RateLimits:
        """Same limits on every axis (tests and benchmarks)."""

        def full(x: float) -> np.ndarray:
            return np.full(num_axes, float(x))

        return cls(
            full(min_position),
            full(max_position),
            full(max_velocity),
            full(max_acceleration),
            full(max_jerk),
            full(max_step_from_measured),
        )

    @property
    def num_axes(self) -> int:
        return int(self.min_position.shape[0])


@dataclass(frozen=True)
class MotionState:
    """Commanded position, velocity and acceleration ``[D]`` after a tick (setpoint finite differences)."""

    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray

    @classmethod
    def at_rest(cls, position: np.ndarray) -> MotionState:
        p = np.array(position, dtype=np.float64)
        return cls(p, np.zeros_like(p), np.zeros_like(p))

    def is_at_rest(self) -> bool:
        return bool(not np.any(self.velocity) and not np.any(self.acceleration))


def _check_dt(dt: float) -> None:
    # A rejection before any arithmetic: dt <= 0 or NaN is never "nothing to do".
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")


def clamp_positions(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clamp positions into ``[lo, hi]`` per column.

    Args:
        values: ``[..., D]`` finite positions.
        lo: ``[D]`` lower bounds.
        hi: ``[D]`` upper bounds.

    Returns:
        The clamped copy, and a ``[D]`` bool mask of columns where any value changed.

    Raises:
        ValueError: ``values`` contains NaN/Inf (np.clip would let NaN through).
    """
    if not np.all(np.isfinite(values)):
        raise ValueError("clamp_positions: values contain NaN/Inf; reject the input before clamping")
    clamped = np.clip(values, lo, hi)
    changed = clamped != values
    mask = changed.reshape(-1, changed.shape[-1]).any(axis=0)
    return clamped, mask


def braking_accel(
    velocity: np.ndarray, acceleration: np.ndarray, dt: float, limits: RateLimits
) -> tuple[np.ndarray, np.ndarray]:
    """The braking law: next acceleration that brings each axis to rest as fast as the limits allow.

    Continuous-time jerk-limited braking follows ``a = -sign(v) * min(A, sqrt(2 J |v|))`` (ramping the
    acceleration back to zero at jerk J consumes exactly |v|). Discretely, the command follows that curve
    within one jerk step, and lands exactly (``v -> 0``) when the landing acceleration ``-v/dt`` is reachable
    and small enough to ramp to zero in the next step.

    Returns:
        ``(a_next, land)``: next acceleration ``[D]`` and a mask of axes whose velocity becomes exactly 0.
    """
    amax, jdt = limits.max_acceleration, limits.max_jerk * dt
    a_land = -velocity / dt
    land = (np.abs(a_land - acceleration) <= jdt) & (np.abs(a_land) <= np.minimum(amax, jdt))
    target = -np.sign(velocity) * np.minimum(amax, np.sqrt(2.0 * limits.max_jerk * np.abs(velocity)))
    a_next = np.clip(np.clip(target, acceleration - jdt, acceleration + jdt), -amax, amax)
    return np.where(land, a_land, a_next), land


def _advance(
    position: np.ndarray, velocity: np.ndarray, a_next: np.ndarray, land: np.ndarray | None, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    v_next = velocity + a_next * dt
    if land is not None:
        v_next = np.where(land, 0.0, v_next)
    return position + v_next * dt, v_next


def stopping_bound(
    velocity: np.ndarray, acceleration: np.ndarray, dt: float, limits: RateLimits
) -> tuple[np.ndarray, np.ndarray]:
    """Conservative bounds on the braking law's excursion and peak speed from ``(v, a)``.

    Peak speed: the speed only grows while the acceleration still points along the motion; ramping it to
    zero at jerk J adds at most ``a^2 / (2J)`` plus one discrete step. Time to rest is at most the ramp of
    ``a`` to zero plus the jerk/acceleration-limited braking time of the peak speed (``w/A + 2 sqrt(w/J)``)
    plus a few steps of discretisation slack; the excursion is at most peak speed times that time.

    Returns:
        ``(excursion, peak_speed)``, each ``[D]``; the braking law never moves farther than ``excursion``
        from the start (either direction) and never faster than ``peak_speed``.
    """
    amax, jmax = limits.max_acceleration, limits.max_jerk
    speed = np.abs(velocity)
    along = acceleration * np.sign(velocity) > 0
    a_abs = np.abs(acceleration)
    ramp = a_abs * a_abs / (2.0 * jmax)  # speed gained while ramping |a| to zero at max jerk
    forward = np.where(along, speed + ramp + a_abs * dt, speed)
    # Braking harder than the speed can absorb reverses the motion, up to ramp - speed.
    reverse = np.where(along, 0.0, np.maximum(0.0, ramp - speed + a_abs * dt))
    # Landing can overshoot zero speed by at most a couple of acceleration steps.
    slack = 2.0 * np.minimum(amax, jmax * dt) * dt
    peak = np.maximum(np.maximum(forward, reverse), slack)
    t_stop = a_abs / jmax + (peak + slack) / amax + 2.0 * np.sqrt((peak + slack) / jmax) + 4.0 * dt
    return (peak + slack) * t_stop + amax * dt * dt, peak


def braking_is_safe(
    state_p: np.ndarray,
    state_v: np.ndarray,
    state_a: np.ndarray,
    dt: float,
    limits: RateLimits,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """Per axis: does the braking law from this state come to rest inside ``[lo, hi]`` within the velocity
    limit? Exact for the discrete model (simulated) wherever the conservative ``stopping_bound`` cannot
    decide.

    Returns:
        ``[D]`` bool.
    """
    vmax = limits.max_velocity
    excursion, peak = stopping_bound(state_v, state_a, dt, limits)
    speed_ok = np.abs(state_v) <= vmax
    fast = speed_ok & (peak <= vmax) & (state_p - excursion >= lo) & (state_p + excursion <= hi)
    if fast.all():
        return fast
    # Exact check: simulate the braking law (vectorised over axes) until every axis is at rest.
    t_stop = excursion / np.maximum(peak, 1e-300)  # = t_stop bound from stopping_bound (upper bound)
    steps = int(min(_MAX_SIM_STEPS, math.ceil(2.0 * float(np.max(np.where(fast, 0.0, t_stop))) / dt) + 10))
    p, v, a = state_p.copy(), state_v.copy(), state_a.copy()
    p_min, p_max, v_abs = p.copy(), p.copy(), np.abs(v)
    rest = (v == 0) & (a == 0)
    for _ in range(steps):
        if rest.all():
            break
        a, land = braking_accel(v, a, dt, limits)
        p, v = _advance(p, v, a, land, dt)
        np.minimum(p_min, p, out=p_min)
        np.maximum(p_max, p, out=p_max)
        np.maximum(v_abs, np.abs(v), out=v_abs)
        rest = (v == 0) & (a == 0)
    exact = rest & (p_min >= lo) & (p_max <= hi) & (v_abs <= vmax) & speed_ok
    return fast | exact


def limit_step(
    previous: MotionState,
    target_position: np.ndarray,
    target_velocity: np.ndarray,
    dt: float,
    limits: RateLimits,
) -> tuple[MotionState, np.ndarray]:
    """One tick of the jerk-limited limiter: the next command toward a target, within all limits.

    Tracking: deadbeat (the output equals the target) whenever the target's own finite differences are
    within the limits, so a feasible stream passes unchanged. Otherwise the axis approaches the target at a
    speed it can brake from (``sqrt``-law with half the acceleration, the other half absorbs the jerk ramp),
    with the acceleration step clipped to the jerk limit, the acceleration to its limit and the velocity to
    its limit; finally the braking-safety check above may replace the command with the braking law.

    Args:
        previous: Command state of the previous tick (from ``MotionState.at_rest(measured)`` at soft start).
        target_position: ``[D]`` finite target for this tick (already clamped into the position bounds).
        target_velocity: ``[D]`` finite velocity of the target (feed-forward; zeros for a fixed target).
        dt: Control period in seconds, > 0.
        limits: Per-column limits.

    Returns:
        ``(next_state, limited)``: the new command, and per-axis ``LIMITED_*`` bit flags (0 = the limiter
        did not act on that axis).

    Raises:
        ValueError: non-finite target or state, or invalid ``dt`` (checked before any arithmetic).
    """
    _check_dt(dt)
    for name, arr in (
        ("target_position", target_position),
        ("target_velocity", target_velocity),
        ("previous.position", previous.position),
        ("previous.velocity", previous.velocity),
        ("previous.acceleration", previous.acceleration),
    ):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"limit_step: {name} contains NaN/Inf")
    p, v, a = previous.position, previous.velocity, previous.acceleration
    vmax, amax, jdt = limits.max_velocity, limits.max_acceleration, limits.max_jerk * dt
    flags = np.zeros(p.shape[0], dtype=np.int64)

    error = target_position - p
    a_track = _TRACKING_ACCEL_SHARE * amax
    cap = np.sqrt(2.0 * a_track * np.abs(error))
    v_des = target_velocity + np.clip(error / dt - target_velocity, -cap, cap)
    flags |= np.where(np.abs(v_des) > vmax, LIMITED_VELOCITY, 0)
    v_des = np.clip(v_des, -vmax, vmax)
    a_des = (v_des - v) / dt
    a_j = np.clip(a_des, a - jdt, a + jdt)
    flags |= np.where(a_j != a_des, LIMITED_JERK, 0)
    a_c = np.clip(a_j, -amax, amax)
    flags |= np.where(a_c != a_j, LIMITED_ACCELERATION, 0)
    p_c, v_c = _advance(p, v, a_c, None, dt)

    lo = np.minimum(limits.min_position, p)  # a start outside the bounds may only move back in
    hi = np.maximum(limits.max_position, p)
    safe = braking_is_safe(p_c, v_c, a_c, dt, limits, lo, hi)
    if not safe.all():
        a_b, land = braking_accel(v, a, dt, limits)
        p_b, v_b = _advance(p, v, a_b, land, dt)
        p_c = np.where(safe, p_c, p_b)
        v_c = np.where(safe, v_c, v_b)
        a_c = np.where(safe, a_c, a_b)
        flags |= np.where(safe, 0, LIMITED_BRAKING)
    return MotionState(p_c, v_c, a_c), flags


def brake_step(previous: MotionState, dt: float, limits: RateLimits) -> MotionState:
    """One tick of the braking law (watchdog ``decelerate``, e-stop): toward rest within the limits."""
    _check_dt(dt)
    a_b, land = braking_accel(previous.velocity, previous.acceleration, dt, limits)
    p_b, v_b = _advance(previous.position, previous.velocity, a_b, land, dt)
    return MotionState(p_b, v_b, a_b)


def flag_reasons(flags: int) -> tuple[str, ...]:
    """Reason codes of one axis' ``LIMITED_*`` flags."""
    return tuple(reason for bit, reason in FLAG_REASONS if flags & bit)


# ---------------------------------------------------------------------------------------------- orientation


def quaternion_angle(q1: np.ndarray, q2: np.ndarray) -> float:
    """Rotation angle in rad between two unit quaternions (x, y, z, w), sign-invariant."""
    d = min(1.0, abs(float(np.dot(q1, q2))))
    return 2.0 * math.acos(d)


def slerp(q1: np.ndarray, q2: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation along the shorter arc from unit ``q1`` (fraction 0) to unit ``q2`` (1)."""
    d = float(np.dot(q1, q2))
    if d < 0.0:
        q2, d = -q2, -d
    if d > 0.9999995:
        out = q1 + fraction * (q2 - q1)
        return out / np.linalg.norm(out)
    theta = math.acos(min(1.0, d))
    s = math.sin(theta)
    return (math.sin((1.0 - fraction) * theta) * q1 + math.sin(fraction * theta) * q2) / s


def limit_rotation_step(
    q_prev: np.ndarray, q_target: np.ndarray, max_angle_rad: float
) -> tuple[np.ndarray, bool]:
    """Move unit ``q_prev`` toward unit ``q_target`` by at most ``max_angle_rad`` (slerp-limiting).

    Returns:
        The new unit quaternion (sign aligned with ``q_prev``, so consecutive setpoints do not flip), and
        whether the step was limited.
    """
    q_t = q_target if float(np.dot(q_prev, q_target)) >= 0.0 else -q_target
    angle = quaternion_angle(q_prev, q_t)
    if angle <= max_angle_rad:
        return q_t.copy(), False
    return slerp(q_prev, q_t, max_angle_rad / angle), True


def clamp_to_cone(q: np.ndarray, reference: np.ndarray, max_angle_rad: float) -> tuple[np.ndarray, bool]:
    """Clamp unit ``q`` into the cone of rotations within ``max_angle_rad`` of ``reference``.

    Returns:
        The clamped quaternion (the point of the cone boundary on the arc reference -> q) and whether it
        changed.
    """
    sign = 1.0 if float(np.dot(reference, q)) >= 0.0 else -1.0
    angle = quaternion_angle(reference, q)
    if angle <= max_angle_rad:
        return q.copy(), False
    return sign * slerp(reference, sign * q, max_angle_rad / angle), True


QUATERNION_COLUMNS = slice(3, 7)
assert len(QUATERNION_AXES) == QUATERNION_COLUMNS.stop - QUATERNION_COLUMNS.start
