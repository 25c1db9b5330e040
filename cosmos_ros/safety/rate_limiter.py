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


def _brake_axis(v: float, a: float, dt: float, amax: float, jmax: float) -> tuple[float, float]:
    """The braking law for one axis: ``(a_next, v_next)``. The single implementation every braking path
    (streaming, safety simulation, watchdog, e-stop) calls, so their floats agree bit for bit."""
    jdt = jmax * dt
    a_land = -v / dt
    if abs(a_land - a) <= jdt and abs(a_land) <= min(amax, jdt):
        return a_land, 0.0
    sign = 1.0 if v > 0 else (-1.0 if v < 0 else 0.0)
    target = -sign * min(amax, math.sqrt(2.0 * jmax * abs(v)))
    a_next = min(max(min(max(target, a - jdt), a + jdt), -amax), amax)
    return a_next, v + a_next * dt


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
    a_next = np.empty_like(velocity)
    land = np.zeros(velocity.shape, dtype=bool)
    for i in range(velocity.shape[0]):
        a_next[i], v_next = _brake_axis(
            float(velocity[i]),
            float(acceleration[i]),
            dt,
            float(limits.max_acceleration[i]),
            float(limits.max_jerk[i]),
        )
        land[i] = v_next == 0.0
    return a_next, land


def _stopping_bound_axis(v: float, a: float, dt: float, amax: float, jmax: float) -> tuple[float, float]:
    speed, a_abs = abs(v), abs(a)
    along = a * v > 0
    ramp = a_abs * a_abs / (2.0 * jmax)  # speed gained while ramping |a| to zero at max jerk
    forward = speed + ramp + a_abs * dt if along else speed
    # Braking harder than the speed can absorb reverses the motion, up to ramp - speed.
    reverse = 0.0 if along else max(0.0, ramp - speed + a_abs * dt)
    # Landing can overshoot zero speed by at most a couple of acceleration steps, and only when one jerk
    # step cannot span 2 A (otherwise the landing acceleration -v/dt is always reachable: no overshoot).
    slack = 2.0 * min(amax, jmax * dt) * dt if jmax * dt < 2.0 * amax else 0.0
    peak = max(forward, reverse, slack)
    w = max(forward, reverse)
    # Ramp |a| to zero (speed <= w), then brake from w: distance <= w^2/(2A) + w A/(2J) (jerk-limited
    # braking, continuous), plus a few steps at speed w for discretisation, plus the landing overshoot.
    # Sampled worst case of (simulated excursion / this sum) is 0.9996, so a 1.5 safety factor on top.
    excursion = 1.5 * (
        w * (a_abs / jmax + w / (2.0 * amax) + amax / (2.0 * jmax) + 3.0 * dt)
        + slack * (slack / amax + 4.0 * dt)
        + amax * dt * dt
    )
    return excursion, peak


def stopping_bound(
    velocity: np.ndarray, acceleration: np.ndarray, dt: float, limits: RateLimits
) -> tuple[np.ndarray, np.ndarray]:
    """Conservative bounds on the braking law's excursion and peak speed from ``(v, a)``.

    Peak speed: the speed only grows while the acceleration still points along the motion; ramping it to
    zero at jerk J adds at most ``a^2 / (2J)`` plus one discrete step (and braking harder than the speed can
    absorb reverses the motion by at most ``a^2/(2J) - |v|``). Time to rest is at most the ramp of ``a`` to
    zero plus the jerk/acceleration-limited braking time of the peak speed (``w/A + 2 sqrt(w/J)``) plus a
    few steps of discretisation slack; the excursion is at most peak speed times that time. A property test
    checks the bound against the simulated braking law.

    Returns:
        ``(excursion, peak_speed)``, each ``[D]``; the braking law never moves farther than ``excursion``
        from the start (either direction) and never faster than ``peak_speed``.
    """
    # Vectorised twin of _stopping_bound_axis (same formula; a property test checks both against the
    # simulated braking law).
    amax, jmax = limits.max_acceleration, limits.max_jerk
    speed, a_abs = np.abs(velocity), np.abs(acceleration)
    along = acceleration * velocity > 0
    ramp = a_abs * a_abs / (2.0 * jmax)
    forward = np.where(along, speed + ramp + a_abs * dt, speed)
    reverse = np.where(along, 0.0, np.maximum(0.0, ramp - speed + a_abs * dt))
    slack = np.where(jmax * dt < 2.0 * amax, 2.0 * np.minimum(amax, jmax * dt) * dt, 0.0)
    w = np.maximum(forward, reverse)
    peak = np.maximum(w, slack)
    excursion = 1.5 * (
        w * (a_abs / jmax + w / (2.0 * amax) + amax / (2.0 * jmax) + 3.0 * dt)
        + slack * (slack / amax + 4.0 * dt)
        + amax * dt * dt
    )
    return excursion, peak


def _axis_brakes_safely(
    p: float, v: float, a: float, dt: float, vmax: float, amax: float, jmax: float, lo: float, hi: float
) -> bool:
    """Does the braking law from ``(p, v, a)`` come to rest inside ``[lo, hi]`` within ``vmax``?

    Simulated step by step (exact for the discrete model); every few steps the conservative bound is tried
    so the simulation stops as soon as the rest of the braking provably fits.
    """
    if not (lo <= p <= hi) or abs(v) > vmax:
        return False
    for step in range(_MAX_SIM_STEPS):
        if v == 0.0 and a == 0.0:
            return True
        if step % 4 == 0:
            excursion, peak = _stopping_bound_axis(v, a, dt, amax, jmax)
            if peak <= vmax and p - excursion >= lo and p + excursion <= hi:
                return True
        a, v = _brake_axis(v, a, dt, amax, jmax)
        p = p + v * dt
        if p < lo or p > hi or abs(v) > vmax:
            return False
    return False  # not at rest within the horizon: treat as unsafe (conservative)


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
    safe = (
        (np.abs(state_v) <= vmax) & (peak <= vmax) & (state_p - excursion >= lo) & (state_p + excursion <= hi)
    )
    for i in np.nonzero(~safe)[0]:
        safe[i] = _axis_brakes_safely(
            float(state_p[i]),
            float(state_v[i]),
            float(state_a[i]),
            dt,
            float(vmax[i]),
            float(limits.max_acceleration[i]),
            float(limits.max_jerk[i]),
            float(lo[i]),
            float(hi[i]),
        )
    return safe


def _brake_state(previous: MotionState, dt: float, limits: RateLimits, axes: np.ndarray) -> MotionState:
    """Apply the braking law to ``axes`` (indices); other axes copied unchanged."""
    p, v, a = previous.position.copy(), previous.velocity.copy(), previous.acceleration.copy()
    for i in axes:
        a_i, v_i = _brake_axis(
            float(v[i]), float(a[i]), dt, float(limits.max_acceleration[i]), float(limits.max_jerk[i])
        )
        a[i], v[i] = a_i, v_i
        p[i] = float(p[i]) + v_i * dt
    return MotionState(p, v, a)


def limit_step(
    previous: MotionState,
    target_position: np.ndarray,
    target_velocity: np.ndarray,
    dt: float,
    limits: RateLimits,
    min_position: np.ndarray | None = None,
    max_position: np.ndarray | None = None,
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
        min_position: Optional ``[D]`` tighter lower bounds for this tick (e.g. measured - max step);
            default ``limits.min_position``.
        max_position: Optional ``[D]`` tighter upper bounds for this tick; default ``limits.max_position``.

    Returns:
        ``(next_state, limited)``: the new command, and per-axis ``LIMITED_*`` bit flags (0 = the limiter
        did not act on that axis).

    Raises:
        ValueError: non-finite target or state, or invalid ``dt`` (checked before any arithmetic).
    """
    _check_dt(dt)
    arrays = (target_position, target_velocity, previous.position, previous.velocity, previous.acceleration)
    # One cheap test on the hot path (a sum is finite only if every term is, barring overflow); the
    # per-array test names the culprit.
    if not math.isfinite(sum(float(x.sum()) for x in arrays)):
        names = ("target_position", "target_velocity", "previous.position", "previous.velocity")
        for name, arr in zip((*names, "previous.acceleration"), arrays, strict=True):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"limit_step: {name} contains NaN/Inf")
    p, v, a = previous.position, previous.velocity, previous.acceleration
    vmax, amax, jdt = limits.max_velocity, limits.max_acceleration, limits.max_jerk * dt

    # np.minimum/np.maximum rather than np.clip: same result for lo <= hi, a fraction of the overhead.
    error = target_position - p
    cap = np.sqrt((2.0 * _TRACKING_ACCEL_SHARE) * amax * np.abs(error))
    v_des = target_velocity + np.minimum(np.maximum(error / dt - target_velocity, -cap), cap)
    over_v = np.abs(v_des) > vmax
    v_des = np.minimum(np.maximum(v_des, -vmax), vmax)
    a_des = (v_des - v) / dt
    a_j = np.minimum(np.maximum(a_des, a - jdt), a + jdt)
    a_c = np.minimum(np.maximum(a_j, -amax), amax)
    flags = over_v * LIMITED_VELOCITY + (a_j != a_des) * LIMITED_JERK + (a_c != a_j) * LIMITED_ACCELERATION
    v_c = v + a_c * dt
    p_c = p + v_c * dt

    # A command outside the bounds (start there, or a moving bound passed it) may only move back in.
    lo = np.minimum(limits.min_position if min_position is None else min_position, p)
    hi = np.maximum(limits.max_position if max_position is None else max_position, p)
    safe = braking_is_safe(p_c, v_c, a_c, dt, limits, lo, hi)
    if not safe.all():
        unsafe = np.nonzero(~safe)[0]
        braked = _brake_state(previous, dt, limits, unsafe)
        p_c[unsafe] = braked.position[unsafe]
        v_c[unsafe] = braked.velocity[unsafe]
        a_c[unsafe] = braked.acceleration[unsafe]
        flags[unsafe] |= LIMITED_BRAKING
    return MotionState(p_c, v_c, a_c), flags


def brake_step(previous: MotionState, dt: float, limits: RateLimits) -> MotionState:
    """One tick of the braking law (watchdog ``decelerate``, e-stop): toward rest within the limits."""
    _check_dt(dt)
    if previous.is_at_rest():  # the braking law keeps a state at rest where it is
        return MotionState(previous.position.copy(), previous.velocity.copy(), previous.acceleration.copy())
    return _brake_state(previous, dt, limits, np.arange(previous.position.shape[0]))


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
