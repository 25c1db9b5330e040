"""The stateless clamps, judged by the independent finite-difference checker (cosmos_ros.safety.verify).

Property tests generate limits, control periods, start states and targets; each asserts what the checker
says about the limiter's output. The checker is shown to fail on violating input first, so a passing
property cannot come from a checker that never fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cosmos_ros.safety.rate_limiter import (
    LIMITED_BRAKING,
    MotionState,
    RateLimits,
    _stopping_bound_axis,
    brake_step,
    braking_accel,
    clamp_positions,
    clamp_to_cone,
    limit_rotation_step,
    limit_step,
    quaternion_angle,
    stopping_bound,
)
from cosmos_ros.safety.verify import find_violations

# The budget comes from the Hypothesis profile (test/conftest.py: "ci" 2500 -> 2000 here, "dev" 200 -> 160).
EXAMPLES = max(1, settings.default.max_examples * 4 // 5)
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

log_floats = st.floats(min_value=-1.0, max_value=2.0).map(lambda e: float(10.0**e))
dts = st.sampled_from([0.001, 0.002, 0.005, 0.01, 0.02, 0.05])


def _violations(positions: np.ndarray, dt: float, lim: RateLimits, from_rest: bool = True) -> list:
    return find_violations(
        positions,
        dt,
        min_position=lim.min_position,
        max_position=lim.max_position,
        max_velocity=lim.max_velocity,
        max_acceleration=lim.max_acceleration,
        max_jerk=lim.max_jerk,
        from_rest=from_rest,
    )


# --------------------------------------------------------------------------- the checker can fail


def test_checker_flags_each_kind_of_violation() -> None:
    dt = 0.01
    lim = RateLimits.uniform(
        1, min_position=-1, max_position=1, max_velocity=1, max_acceleration=10, max_jerk=100
    )
    assert _violations(np.zeros((5, 1)), dt, lim) == []
    jump = np.array([[0.0], [0.0], [0.5]])  # 50 rad/s in one step
    kinds = {v.kind for v in _violations(jump, dt, lim)}
    assert {"velocity", "acceleration", "jerk"} <= kinds
    outside = np.array([[0.0], [1.0000001]])
    assert [v.kind for v in _violations(outside, dt, RateLimits.uniform(1, max_position=1.0))] == ["position"]
    # Acceleration within limit, jerk not: a from 0 to 5 rad/s^2 in one step is 500 rad/s^3 > 100.
    p = [0.0]
    v = 0.0
    for _ in range(3):
        v += 5.0 * dt
        p.append(p[-1] + v * dt)
    only_jerk = [x.kind for x in _violations(np.array(p)[:, None], dt, lim)]
    assert "jerk" in only_jerk and "acceleration" not in only_jerk and "velocity" not in only_jerk


def test_checker_refuses_nonfinite_streams() -> None:
    with pytest.raises(ValueError, match="NaN"):
        find_violations(np.array([[0.0], [math.nan]]), 0.01)


# --------------------------------------------------------------------------- stateless clamps


def test_clamp_positions_reports_changed_columns_and_refuses_nan() -> None:
    values = np.array([[0.0, 2.0], [0.5, -3.0]])
    clamped, mask = clamp_positions(values, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    np.testing.assert_array_equal(clamped, [[0.0, 1.0], [0.5, -1.0]])
    np.testing.assert_array_equal(mask, [False, True])
    with pytest.raises(ValueError, match="NaN"):
        clamp_positions(np.array([[math.nan, 0.0]]), np.zeros(2), np.ones(2))


@pytest.mark.parametrize("dt", [0.0, -0.01, math.nan, math.inf])
def test_limit_step_rejects_bad_dt_before_arithmetic(dt: float) -> None:
    lim = RateLimits.uniform(1, max_velocity=1.0)
    with pytest.raises(ValueError, match="dt must be"):
        limit_step(MotionState.at_rest(np.zeros(1)), np.ones(1), np.zeros(1), dt, lim)


def test_limit_step_rejects_nonfinite_target() -> None:
    lim = RateLimits.uniform(1, max_velocity=1.0)
    with pytest.raises(ValueError, match="target_position contains NaN"):
        limit_step(MotionState.at_rest(np.zeros(1)), np.array([math.nan]), np.zeros(1), 0.01, lim)


def test_feasible_target_passes_unchanged_and_step_is_limited() -> None:
    lim = RateLimits.uniform(2, max_velocity=1.0, max_acceleration=10.0, max_jerk=1000.0)
    state = MotionState.at_rest(np.zeros(2))
    nxt, flags = limit_step(state, np.array([1e-5, -1e-5]), np.zeros(2), 0.01, lim)
    np.testing.assert_allclose(nxt.position, [1e-5, -1e-5], atol=1e-15)
    assert not flags.any()
    nxt, flags = limit_step(state, np.array([1.0, 0.0]), np.zeros(2), 0.01, lim)
    assert nxt.position[0] < 1.0 and flags[0] != 0 and flags[1] == 0


def test_braking_law_comes_to_rest_inside_the_bound() -> None:
    """Moving at full speed toward a bound with a target beyond it: the limiter brakes and stops before it."""
    lim = RateLimits.uniform(
        1, min_position=-1.0, max_position=1.0, max_velocity=2.0, max_acceleration=5.0, max_jerk=50.0
    )
    dt = 0.01
    state = MotionState.at_rest(np.array([-0.9]))
    out = [state.position.copy()]
    braked = False
    for _ in range(600):
        state, flags = limit_step(state, np.array([1.0]), np.array([0.0]), dt, lim)
        braked |= bool(flags[0] & LIMITED_BRAKING)
        out.append(state.position.copy())
    positions = np.array(out)
    assert positions.max() <= 1.0
    assert positions[-1, 0] == pytest.approx(1.0, abs=1e-6)
    assert _violations(positions, dt, lim) == []
    assert braked  # the braking law, not luck, kept it inside


# --------------------------------------------------------------------------- properties


@st.composite
def limits_and_state(draw: st.DrawFn, num_axes: int = 3) -> tuple[RateLimits, float, MotionState]:
    dt = draw(dts)
    lo = draw(st.floats(-2.0, 0.0))
    width = draw(st.floats(0.05, 4.0))
    lim = RateLimits(
        min_position=np.full(num_axes, lo),
        max_position=np.full(num_axes, lo + width),
        max_velocity=np.array([draw(log_floats) for _ in range(num_axes)]),
        max_acceleration=np.array([draw(log_floats) * 5 for _ in range(num_axes)]),
        max_jerk=np.array([draw(log_floats) * 50 for _ in range(num_axes)]),
        max_step_from_measured=np.full(num_axes, 1e12),
    )
    fractions = np.array([draw(st.floats(0.0, 1.0)) for _ in range(num_axes)])
    state = MotionState.at_rest(lo + fractions * width)
    return lim, dt, state


@PROPERTY
@given(
    setup=limits_and_state(),
    targets=st.lists(
        st.tuples(st.integers(1, 30), st.lists(st.floats(-4.0, 4.0), min_size=3, max_size=3)),
        min_size=1,
        max_size=5,
    ),
)
def test_streamed_setpoints_respect_all_limits(
    setup: tuple[RateLimits, float, MotionState], targets: list[tuple[int, list[float]]]
) -> None:
    """Arbitrary (even out-of-bounds, jumping) targets: every output within bounds and rate limits."""
    lim, dt, state = setup
    out = [state.position.copy()]
    zeros = np.zeros(3)
    for ticks, target in targets:
        tgt = np.array(target)
        for _ in range(ticks):
            state, _ = limit_step(state, tgt, zeros, dt, lim)
            out.append(state.position.copy())
    assert _violations(np.array(out), dt, lim) == []


@PROPERTY
@given(setup=limits_and_state(), ticks=st.integers(1, 80), kick=st.floats(-1.0, 1.0))
def test_brake_step_respects_limits_from_any_limited_state(
    setup: tuple[RateLimits, float, MotionState], ticks: int, kick: float
) -> None:
    """Drive toward a far target, then brake (watchdog decelerate / e-stop): limits hold, it comes to rest."""
    lim, dt, state = setup
    out = [state.position.copy()]
    tgt = np.where(kick > 0, lim.max_position, lim.min_position)
    for _ in range(ticks):
        state, _ = limit_step(state, tgt, np.zeros(3), dt, lim)
        out.append(state.position.copy())
    for _ in range(20000):
        if state.is_at_rest():
            break
        state = brake_step(state, dt, lim)
        out.append(state.position.copy())
    assert state.is_at_rest()
    assert _violations(np.array(out), dt, lim) == []


def _feasible_stream(jerks: list[float], dt: float) -> np.ndarray:
    """Integrate a jerk profile that starts and ends at rest: j, -reversed(j), -j, reversed(j) brings the
    acceleration back to 0 after the second quarter and the velocity back to 0 after the fourth."""
    profile = jerks + [-x for x in reversed(jerks)] + [-x for x in jerks] + list(reversed(jerks))
    a = v = p = 0.0
    out = [0.0]
    for j in profile:
        a += j * dt
        v += a * dt
        p += v * dt
        out.append(p)
    return np.array(out)


@PROPERTY
@given(
    jerks=st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=15),
    dt=dts,
    which=st.sampled_from(["velocity", "acceleration", "jerk"]),
    factor=st.sampled_from([0.5, 0.9, 0.99, 1.001, 1.05, 2.0]),
)
def test_just_inside_passes_unchanged_just_outside_is_corrected(
    jerks: list[float], dt: float, which: str, factor: float
) -> None:
    """libfranka-style: a rest-to-rest stream whose binding limit is ``factor`` x the limit. Inside: the
    input does not violate and passes unchanged. Outside: the input violates, the output differs, the
    output does not. ("Inside" keeps a 1 % margin: the limiter keeps a braking reserve, so a stream that
    rides a limit exactly may be braked one discretisation step earlier than the input.)"""
    raw = _feasible_stream(jerks, dt)
    assume(np.abs(raw).max() > 1e-12)
    raw = raw / np.abs(raw).max()  # positions O(1), so 0.1 % excess is far above float resolution
    v = np.diff(np.concatenate([[0.0, 0.0], raw])) / dt
    a = np.diff(v) / dt
    j = np.diff(a) / dt
    peaks = {"velocity": np.abs(v).max(), "acceleration": np.abs(a).max(), "jerk": np.abs(j).max()}
    assume(peaks[which] > 1e-9)
    # Limits: the chosen one is binding at `factor`; the others have 50 % headroom after scaling.
    limits = {k: peaks[k] * 1.5 for k in peaks}
    limits[which] = peaks[which] / factor
    for k in peaks:
        if k != which and peaks[k] > limits[k] / 1.5:
            limits[k] = peaks[k] * 1.5
    big = float(np.abs(raw).max()) * 10 + 10.0
    lim = RateLimits.uniform(
        1,
        min_position=-big,
        max_position=big,
        max_velocity=max(limits["velocity"], 1e-12),
        max_acceleration=max(limits["acceleration"], 1e-12),
        max_jerk=max(limits["jerk"], 1e-12),
    )
    stream = raw[:, None]
    input_violations = _violations(stream, dt, lim)
    state = MotionState.at_rest(stream[0])
    out = [state.position.copy()]
    for k in range(1, stream.shape[0]):
        ff = (stream[k] - stream[k - 1]) / dt
        state, _ = limit_step(state, stream[k], ff, dt, lim)
        out.append(state.position.copy())
    output = np.array(out)
    if factor < 1.0:
        assert input_violations == []
        np.testing.assert_allclose(output, stream, rtol=0, atol=1e-9 * (1 + np.abs(stream).max()))
    else:
        assert input_violations, "the generated input should violate"
        assert np.abs(output - stream).max() > 0
    assert _violations(output, dt, lim) == []


@PROPERTY
@given(
    v=st.floats(-1.0, 1.0),
    a=st.floats(-1.0, 1.0),
    vmax=log_floats,
    amax=log_floats,
    jmax=log_floats,
    dt=dts,
)
def test_stopping_bound_is_conservative(
    v: float, a: float, vmax: float, amax: float, jmax: float, dt: float
) -> None:
    """The cheap bound the limiter trusts far from the bounds must never under-estimate the braking law."""
    lim = RateLimits.uniform(1, max_velocity=vmax, max_acceleration=amax, max_jerk=jmax * 10)
    vel, acc = np.array([v * vmax]), np.array([a * amax])
    excursion, peak = stopping_bound(vel, acc, dt, lim)
    # Keep the simulation short: skip states whose braking takes more than ~20000 steps.
    assume((peak[0] / lim.max_acceleration[0] + abs(acc[0]) / lim.max_jerk[0]) / dt < 20000)
    p, pmin, pmax, vpeak = 0.0, 0.0, 0.0, abs(vel[0])
    for _ in range(200000):
        if vel[0] == 0 and acc[0] == 0:
            break
        acc, land = braking_accel(vel, acc, dt, lim)
        vel = np.where(land, 0.0, vel + acc * dt)
        p += float(vel[0]) * dt
        pmin, pmax, vpeak = min(pmin, p), max(pmax, p), max(vpeak, abs(float(vel[0])))
    assert vel[0] == 0 and acc[0] == 0, "braking law must come to rest"
    scalar = _stopping_bound_axis(v * vmax, a * amax, dt, amax, jmax * 10)
    assert scalar == pytest.approx((excursion[0], peak[0]), rel=1e-12)  # the two implementations agree
    assert max(-pmin, pmax) <= excursion[0]
    assert vpeak <= peak[0]


# --------------------------------------------------------------------------- orientation


def _random_unit_quaternion(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def test_rotation_step_and_cone_limits() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        q0, q1 = _random_unit_quaternion(rng), _random_unit_quaternion(rng)
        step = float(rng.uniform(0.001, 0.5))
        q, limited = limit_rotation_step(q0, q1, step)
        assert quaternion_angle(q0, q) <= step + 1e-9
        assert float(np.dot(q0, q)) >= 0.0  # never flips sign between setpoints
        assert limited == (quaternion_angle(q0, q1) > step)
        cone, changed = clamp_to_cone(q1, q0, step)
        assert quaternion_angle(q0, cone) <= step + 1e-9
        assert abs(np.linalg.norm(cone) - 1.0) < 1e-12
        assert changed == (quaternion_angle(q0, q1) > step)
