"""Property tests of the whole supervisor over arbitrary limits, plans, measured states and events.

Each example generates a limits set, a start state inside the bounds and a timeline of events (plans with
arbitrary values, timing and ids, some with NaN or degenerate rotations; e-stops and resets; measured states
that track, lag or are noisy), streams 1.2 s of ticks (100 Hz) and judges the published setpoints with the
independent finite-difference checker (``cosmos_ros.safety.verify``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmos_ros.plan import Plan
from cosmos_ros.safety import (
    AxisLimits,
    Decision,
    SafetyLimits,
    SafetySupervisor,
    SupervisorConfig,
    load_limits,
)
from cosmos_ros.safety.rate_limiter import quaternion_angle
from cosmos_ros.safety.verify import find_violations

# The budget comes from the Hypothesis profile (test/conftest.py: "ci" 2500 -> 1500 here, "dev" 200 -> 120).
EXAMPLES = max(1, settings.default.max_examples * 4 // 5)
PROPERTY = settings(
    max_examples=max(1, EXAMPLES * 3 // 4),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CONFIG = Path(__file__).resolve().parents[1] / "config" / "limits"
RATE_HZ = 100.0
TICKS = 120
DT = 1.0 / RATE_HZ


@st.composite
def joint_limits(draw: st.DrawFn) -> SafetyLimits:
    axes = []
    for i in range(draw(st.integers(1, 3))):
        lo = draw(st.floats(-3.0, 0.0))
        width = draw(st.floats(0.05, 3.0))

        def maybe(strategy: st.SearchStrategy[float]) -> float | None:
            return draw(st.one_of(st.none(), strategy)) if draw(st.booleans()) else draw(strategy)

        axes.append(
            AxisLimits(
                name=f"j{i}",
                unit="rad",
                min_position=lo,
                max_position=lo + width,
                max_velocity=maybe(st.floats(0.1, 5.0)),
                max_acceleration=maybe(st.floats(0.5, 50.0)),
                max_jerk=maybe(st.floats(5.0, 5000.0)),
                max_step_from_measured=maybe(st.floats(0.02, 1.0)),
            )
        )
    return SafetyLimits("prop", "joint", "base", 0.5, RATE_HZ, tuple(axes))


@st.composite
def timeline(draw: st.DrawFn, num_axes: int, lo: np.ndarray, hi: np.ndarray, pose: bool) -> list[tuple]:
    """Events ``(tick, kind, payload)`` over ``TICKS`` ticks."""
    events = []
    plan_id = 0
    for _ in range(draw(st.integers(1, 6))):
        tick = draw(st.integers(0, TICKS - 10))
        kind = draw(st.sampled_from(["plan", "plan", "plan", "plan", "estop", "reset"]))
        if kind != "plan":
            events.append((tick, kind, None))
            continue
        steps = draw(st.integers(1, 12))
        period = draw(st.sampled_from([0.05, 0.1, 0.2]))
        t0_offset = draw(st.floats(-0.3, 0.3))
        span = hi - lo
        fractions = draw(
            st.lists(
                st.lists(st.floats(-0.5, 1.5), min_size=num_axes, max_size=num_axes),
                min_size=steps,
                max_size=steps,
            )
        )
        values = lo + np.array(fractions) * span
        if pose:
            quats = draw(
                st.lists(
                    st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4), min_size=steps, max_size=steps
                )
            )
            values[:, 3:7] = np.array(quats)
        corrupt = draw(st.sampled_from(["none", "none", "none", "nan", "id", "stale"]))
        plan_id += 1
        pid = plan_id
        if corrupt == "nan":
            values[draw(st.integers(0, steps - 1)), draw(st.integers(0, num_axes - 1))] = math.nan
        elif corrupt == "id":
            pid = max(plan_id - 2, 0)
        events.append((tick, "plan", (pid, values, period, t0_offset, corrupt == "stale")))
    return sorted(events, key=lambda e: e[0])


def _simulate(
    limits: SafetyLimits,
    config: SupervisorConfig,
    start: np.ndarray,
    events: list[tuple],
    feedback: str,
    skip_rejected: set[int] | None = None,
) -> tuple[np.ndarray, set[int], list]:
    """Run ``TICKS`` ticks; returns published positions, indices of events rejected, and decisions."""
    sup = SafetySupervisor(limits, config)
    sup.activate(0.0)
    measured = start.copy()
    sup.set_measured(measured, 0.0)
    rng = np.random.default_rng(0)
    out, rejected, decisions = [], set(), []
    queue = list(enumerate(events))
    for k in range(TICKS):
        now = k * DT
        while queue and queue[0][1][0] == k:
            index, (_, kind, payload) = queue.pop(0)
            if skip_rejected is not None and index in skip_rejected:
                continue
            if kind == "estop":
                sup.estop(now)
            elif kind == "reset":
                sup.estop_input_released(now)  # a reset is valid only with the stop device released
                sup.reset_estop(now)
            else:
                pid, values, period, t0_offset, stale = payload
                plan = Plan(
                    plan_id=pid,
                    stamp_s=now - (1.0 if stale else 0.05),
                    t0_s=now + t0_offset,
                    step_period_s=period,
                    axis_names=limits.axis_names,
                    values=values,
                    frame_id=limits.frame_id,
                    action_space=limits.action_space,
                )
                decision = sup.push(plan, now)
                decisions.append((index, decision))
                if decision.decision == Decision.REJECTED:
                    rejected.add(index)
        sp = sup.tick(now)
        assert sp is not None
        out.append(sp.positions.copy())
        if feedback == "track":
            measured = sp.positions.copy()
        elif feedback == "lag":
            measured = measured + 0.3 * (sp.positions - measured)
        elif feedback == "noisy":
            measured = sp.positions + rng.normal(scale=0.01, size=measured.shape)
        if feedback != "frozen":
            if limits.kind == "pose":
                measured[3:7] = sp.positions[3:7]
            sup.set_measured(measured, now)
    return np.array(out), rejected, decisions


configs = st.builds(
    SupervisorConfig,
    watchdog_mode=st.sampled_from(["hold", "decelerate"]),
    estop_mode=st.sampled_from(["hold", "decelerate"]),
    blend_mode=st.sampled_from(["crossfade", "replace"]),
    blend_time_s=st.sampled_from([0.0, 0.1, 0.3]),
    # Shorter than one tick, so a "reset" event a tick or more after the last e-stop clears it.
    estop_release_hold_s=st.just(0.005),
)
feedbacks = st.sampled_from(["track", "lag", "noisy", "frozen"])


@PROPERTY
@given(data=st.data(), limits=joint_limits(), config=configs, feedback=feedbacks)
def test_every_setpoint_within_bounds_and_rate_limits(
    data: st.DataObject, limits: SafetyLimits, config: SupervisorConfig, feedback: str
) -> None:
    arr = limits.column_arrays(np.inf)
    lo, hi = arr["min_position"], arr["max_position"]
    start = lo + np.array([data.draw(st.floats(0.0, 1.0)) for _ in lo]) * (hi - lo)
    events = data.draw(timeline(len(lo), lo, hi, pose=False))
    positions, _, _ = _simulate(limits, config, start, events, feedback)
    np.testing.assert_array_equal(positions[0], start)  # soft start
    violations = find_violations(
        positions,
        DT,
        min_position=lo,
        max_position=hi,
        max_velocity=arr["max_velocity"],
        max_acceleration=arr["max_acceleration"],
        max_jerk=arr["max_jerk"],
    )
    assert violations == []


@PROPERTY
@given(data=st.data(), limits=joint_limits(), config=configs, feedback=st.sampled_from(["track", "frozen"]))
def test_rejected_plans_send_nothing(
    data: st.DataObject, limits: SafetyLimits, config: SupervisorConfig, feedback: str
) -> None:
    """The stream with the rejected plans pushed is identical to the stream where they never arrived."""
    arr = limits.column_arrays(np.inf)
    lo, hi = arr["min_position"], arr["max_position"]
    start = lo + np.array([data.draw(st.floats(0.0, 1.0)) for _ in lo]) * (hi - lo)
    events = data.draw(timeline(len(lo), lo, hi, pose=False))
    with_all, rejected, decisions = _simulate(limits, config, start, events, feedback)
    without, _, _ = _simulate(limits, config, start, events, feedback, skip_rejected=rejected)
    np.testing.assert_array_equal(with_all, without)
    for index, decision in decisions:
        payload = events[index][2]
        if np.isnan(payload[1]).any() or payload[4]:
            assert decision.decision == Decision.REJECTED


@PROPERTY
@given(data=st.data(), config=configs, feedback=st.sampled_from(["track", "frozen"]))
def test_pose_setpoints_respect_workspace_rates_and_orientation(
    data: st.DataObject, config: SupervisorConfig, feedback: str
) -> None:
    limits = load_limits(CONFIG / "umi_pose_gripper.yaml")
    arr = limits.column_arrays(np.inf)
    lo, hi = arr["min_position"].copy(), arr["max_position"].copy()
    lo[3:7], hi[3:7] = -1.0, 1.0
    start = lo + np.array([data.draw(st.floats(0.0, 1.0)) for _ in lo]) * (hi - lo)
    start[3:7] = [1.0, 0.0, 0.0, 0.0]
    events = data.draw(timeline(8, lo, hi, pose=True))
    positions, _, decisions = _simulate(limits, config, start, events, feedback)
    linear = np.array([True, True, True, False, False, False, False, True])
    violations = find_violations(
        positions,
        DT,
        min_position=arr["min_position"],
        max_position=arr["max_position"],
        max_velocity=arr["max_velocity"],
        max_acceleration=arr["max_acceleration"],
        max_jerk=arr["max_jerk"],
        columns=linear,
    )
    assert violations == []
    orient = limits.orientation
    assert orient is not None and orient.cone_reference_xyzw is not None
    ref = np.array(orient.cone_reference_xyzw)
    for k in range(positions.shape[0]):
        q = positions[k, 3:7]
        assert abs(np.linalg.norm(q) - 1.0) < 1e-9
        assert quaternion_angle(ref, q) <= orient.cone_max_angle_rad + 1e-9
        if k:
            step = quaternion_angle(positions[k - 1, 3:7], q)
            assert step <= orient.max_angular_velocity_rad_s * DT + 1e-9
            assert float(np.dot(positions[k - 1, 3:7], q)) >= 0.0  # no sign flips in the stream
    for index, decision in decisions:
        quats = events[index][2][1][:, 3:7]
        if np.any(np.linalg.norm(np.nan_to_num(quats, nan=1.0), axis=1) <= 1e-6):
            assert decision.decision == Decision.REJECTED
