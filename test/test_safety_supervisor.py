"""SafetySupervisor unit tests: every rejection reason, each clamp, late plans, blending, watchdog,
soft start, e-stop, max step from measured, pose orientation. Times are passed in; no ROS graph, no sleep."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cosmos_ros.plan import Plan
from cosmos_ros.safety import (
    Decision,
    OutputState,
    SafetyLimits,
    SafetySupervisor,
    SupervisorConfig,
    load_limits,
)
from cosmos_ros.safety.rate_limiter import quaternion_angle
from cosmos_ros.safety.verify import find_violations

CONFIG = Path(__file__).resolve().parents[1] / "config" / "limits"
DT = 0.01
HOME = np.array([0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.0, 0.04])


@pytest.fixture
def arm() -> SafetyLimits:
    return load_limits(CONFIG / "arm7_joints.yaml")


@pytest.fixture
def pose() -> SafetyLimits:
    return load_limits(CONFIG / "umi_pose_gripper.yaml")


def make_plan(limits: SafetyLimits, values: np.ndarray, *, plan_id: int = 1, t0: float = 0.0, **kw) -> Plan:
    fields = dict(
        plan_id=plan_id,
        stamp_s=t0,
        t0_s=t0,
        step_period_s=0.1,
        axis_names=limits.axis_names,
        values=np.asarray(values, dtype=np.float64),
        frame_id=limits.frame_id,
        action_space=limits.action_space,
    )
    fields.update(kw)
    return Plan(**fields)


def started(
    limits: SafetyLimits, measured: np.ndarray, config: SupervisorConfig | None = None
) -> SafetySupervisor:
    sup = SafetySupervisor(limits, config)
    sup.activate(0.0)
    assert sup.set_measured(measured, 0.0)
    first = sup.tick(0.0)
    assert first is not None
    return sup


def run(sup: SafetySupervisor, t_start: float, ticks: int, track: bool = True) -> list:
    out = []
    for k in range(ticks):
        t = t_start + k * DT
        sp = sup.tick(t)
        out.append(sp)
        if track and sp is not None:
            sup.set_measured(sp.positions, t)  # a perfectly tracking robot
    return out


def linear_violations(limits: SafetyLimits, positions: np.ndarray, columns: np.ndarray | None = None) -> list:
    arr = limits.column_arrays(np.inf)
    return find_violations(
        positions,
        DT,
        min_position=arr["min_position"],
        max_position=arr["max_position"],
        max_velocity=arr["max_velocity"],
        max_acceleration=arr["max_acceleration"],
        max_jerk=arr["max_jerk"],
        columns=columns,
    )


# --------------------------------------------------------------------------- soft start / lifecycle


def test_soft_start_waits_for_measured_state_then_starts_there(arm: SafetyLimits) -> None:
    sup = SafetySupervisor(arm)
    assert sup.tick(0.0) is None and sup.output_state == OutputState.IDLE
    sup.activate(0.0)
    assert sup.tick(0.01) is None
    assert sup.output_state == OutputState.WAITING_FOR_STATE
    measured = HOME + 0.1
    measured[-1] = 0.05  # gripper: HOME + 0.1 would be 0.14 m, implausible for a 0.08 m gripper
    assert sup.set_measured(measured, 0.02)
    sp = sup.tick(0.02)
    assert sp is not None
    np.testing.assert_array_equal(sp.positions, measured)  # not zero, not the last plan
    np.testing.assert_array_equal(sp.velocities, 0.0)
    sup.deactivate(0.03)
    assert sup.tick(0.04) is None and sup.output_state == OutputState.IDLE


def test_bad_measured_state_is_refused_and_counted(arm: SafetyLimits) -> None:
    sup = SafetySupervisor(arm)
    assert not sup.set_measured(np.full(8, math.nan), 0.0)
    assert not sup.set_measured(np.zeros(3), 0.0)
    sup.activate(0.0)
    assert sup.tick(0.0) is None


def test_push_while_inactive_is_rejected(arm: SafetyLimits) -> None:
    sup = SafetySupervisor(arm)
    d = sup.push(make_plan(arm, np.tile(HOME, (4, 1))), 0.0)
    assert d.decision == Decision.REJECTED and d.reasons == ("inactive",)


# --------------------------------------------------------------------------- rejections


REJECTION_CASES = {
    "nonfinite": dict(values_fn=lambda v: np.where(np.arange(v.size).reshape(v.shape) == 9, np.nan, v)),
    "action_space": dict(action_space="umi_pose_gripper"),
    "frame": dict(frame_id="world"),
    "stale": dict(stamp_s=-0.6),
    "axes": dict(axis_names=("a", "b", "c", "d", "e", "f", "g", "h")),
    "shape": dict(values_fn=lambda v: v[:0]),
}


@pytest.mark.parametrize("reason", sorted(REJECTION_CASES))
def test_each_rejection_reason_sends_nothing_from_the_plan(arm: SafetyLimits, reason: str) -> None:
    sup = started(arm, HOME)
    case = dict(REJECTION_CASES[reason])
    values = np.tile(HOME, (5, 1)) + np.linspace(0, 0.2, 5)[:, None]
    values_fn = case.pop("values_fn", None)
    if values_fn is not None:
        values = values_fn(values)
    plan = make_plan(arm, values, t0=0.0, **case)
    d = sup.push(plan, 0.0)
    assert d.decision == Decision.REJECTED
    assert d.reasons == (reason,)
    assert not d.streamed and d.message
    assert sup.counters.rejections_by_reason[reason] == 1
    for sp in run(sup, 0.01, 50):
        np.testing.assert_array_equal(sp.positions, HOME)  # nothing of the plan moved anything
        assert sp.state == OutputState.HOLDING


def test_future_stamp_is_stale_too(arm: SafetyLimits) -> None:
    sup = started(arm, HOME)
    d = sup.push(make_plan(arm, np.tile(HOME, (3, 1)), stamp_s=5.0), 0.0)
    assert d.reasons == ("stale",) and "future" in d.message


def test_plan_id_must_increase(arm: SafetyLimits) -> None:
    sup = started(arm, HOME)
    assert sup.push(make_plan(arm, np.tile(HOME, (5, 1)), plan_id=7), 0.0).streamed
    d = sup.push(make_plan(arm, np.tile(HOME, (5, 1)), plan_id=7), 0.0)
    assert d.decision == Decision.REJECTED and d.reasons == ("plan_id",)
    d = sup.push(make_plan(arm, np.tile(HOME, (5, 1)), plan_id=3), 0.0)
    assert d.reasons == ("plan_id",)
    assert sup.push(make_plan(arm, np.tile(HOME, (5, 1)), plan_id=8), 0.0).streamed


def test_degenerate_rotation_is_rejected(pose: SafetyLimits) -> None:
    start = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0, 0.04])
    sup = started(pose, start)
    values = np.tile(start, (4, 1))
    values[2, 3:7] = 0.0
    d = sup.push(make_plan(pose, values), 0.0)
    assert d.decision == Decision.REJECTED and d.reasons == ("rotation",)


def test_plan_entirely_in_the_past_is_stale(arm: SafetyLimits) -> None:
    sup = started(arm, HOME)
    plan = make_plan(arm, np.tile(HOME, (3, 1)), t0=-0.45, stamp_s=-0.1)
    d = sup.push(plan, 0.0)
    assert d.decision == Decision.REJECTED and d.reasons == ("stale",) and d.steps_skipped == 3


# --------------------------------------------------------------------------- clamps


def test_feasible_plan_is_accepted_unchanged_and_followed(arm: SafetyLimits) -> None:
    sup = started(arm, HOME)
    values = np.tile(HOME, (6, 1))
    values[:, 0] += 0.01 * np.arange(6) ** 2 / 25  # gentle, well within limits
    d = sup.push(make_plan(arm, values, t0=0.0), 0.0)
    assert d.decision == Decision.ACCEPTED, d.message
    assert d.reasons == () and not d.max_correction.any()
    sps = run(sup, 0.01, 30)
    assert all(sp.state == OutputState.STREAMING for sp in sps[:-1])
    assert sps[20].plan_id == 1


@pytest.mark.parametrize(
    ("axis", "value", "reason"),
    [(0, 3.5, "position_bound"), (3, 0.2, "position_bound"), (7, 0.2, "gripper")],
)
def test_positions_are_clamped_into_bounds(arm: SafetyLimits, axis: int, value: float, reason: str) -> None:
    sup = started(arm, HOME)
    values = np.tile(HOME, (3, 1))
    values[:, axis] = value
    d = sup.push(make_plan(arm, values, t0=0.0), 0.0)
    assert d.decision == Decision.CLAMPED and reason in d.reasons
    bound = arm.axes[axis].max_position
    # At least the bound correction, at most the whole distance (the rate estimate adds catch-up lag).
    assert value - bound - 1e-12 <= d.max_correction[axis] <= value - HOME[axis] + 1e-12
    assert not np.delete(d.max_correction, axis).any()
    sps = run(sup, 0.01, 300)
    pos = np.array([HOME] + [sp.positions for sp in sps])
    assert pos[:, axis].max() <= bound
    assert linear_violations(arm, pos) == []


def test_fast_plan_is_clamped_by_rates_and_stream_respects_them(arm: SafetyLimits) -> None:
    sup = started(arm, HOME)
    values = np.tile(HOME, (10, 1))
    values[:, 0] = np.linspace(0.0, 2.5, 10)  # 2.5 rad in 0.9 s: > 2.175 rad/s
    d = sup.push(make_plan(arm, values, t0=0.0), 0.0)
    assert d.decision == Decision.CLAMPED
    assert "velocity" in d.reasons or "acceleration" in d.reasons
    assert d.max_correction[0] > 0.01 and d.max_correction[1] == 0
    sps = run(sup, 0.01, 200)
    pos = np.array([HOME] + [sp.positions for sp in sps])
    assert linear_violations(arm, pos) == []
    assert any("panda_joint1" in sp.limited_axes for sp in sps)
    assert sup.counters.plans_clamped == 1 and sup.counters.ticks_limited > 0


def test_max_step_from_measured_pulls_the_target_toward_measured(arm: SafetyLimits) -> None:
    sup = started(arm, HOME)
    values = np.tile(HOME, (20, 1))
    values[:, 0] = np.linspace(0.0, 1.0, 20)
    sup.push(make_plan(arm, values, t0=0.0), 0.0)
    # The robot does not move (measured stays HOME): the command must stay within 0.2 rad of it.
    sps = run(sup, 0.01, 150, track=False)
    assert max(sp.positions[0] for sp in sps) <= HOME[0] + 0.2 + 1e-12
    assert any("max_step" in sp.reasons for sp in sps)


def test_pose_workspace_cone_and_angular_velocity(pose: SafetyLimits) -> None:
    start = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0, 0.04])
    sup = started(pose, start)
    values = np.tile(start, (10, 1))
    values[:, 0] = 0.9  # outside the 0.75 m box
    half = 1.4 / 2  # 1.4 rad about z from the reference: outside the 1.2 rad cone
    qz = np.array([0.0, 0.0, math.sin(half), math.cos(half)])
    ref = np.array([1.0, 0.0, 0.0, 0.0])
    # q = ref * qz (x y z w), both unit: a 1.4 rad rotation away from the reference.
    x1, y1, z1, w1 = ref
    x2, y2, z2, w2 = qz
    q = np.array(
        [
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        ]
    )
    values[:, 3:7] = q * 2.0  # not unit: normalised, not rejected
    d = sup.push(make_plan(pose, values, t0=0.0), 0.0)
    assert d.decision == Decision.CLAMPED
    assert "workspace" in d.reasons and "orientation" in d.reasons
    sps = run(sup, 0.01, 200)
    pos = np.array([start] + [sp.positions for sp in sps])
    linear = np.array([True, True, True, False, False, False, False, True])
    assert linear_violations(pose, pos, columns=linear) == []
    assert pos[:, 0].max() <= 0.75
    for k in range(1, pos.shape[0]):
        assert quaternion_angle(pos[k - 1, 3:7], pos[k, 3:7]) <= 1.5 * DT + 1e-9
        assert quaternion_angle(ref, pos[k, 3:7]) <= 1.2 + 1e-9
        assert abs(np.linalg.norm(pos[k, 3:7]) - 1.0) < 1e-9
    assert quaternion_angle(ref, pos[-1, 3:7]) == pytest.approx(1.2, abs=1e-6)  # reached the cone edge


# --------------------------------------------------------------------------- scheduling


def test_late_plan_skips_past_steps_and_starts_from_now(arm: SafetyLimits) -> None:
    sup = started(arm, HOME)
    values = np.tile(HOME, (10, 1))
    values[:, 0] = 0.01 * np.arange(10)
    # Inference took 0.35 s: steps at 0.0, 0.1, 0.2, 0.3 are already past on arrival at 0.35.
    d = sup.push(make_plan(arm, values, t0=0.0, stamp_s=0.0), 0.35)
    assert d.steps_skipped == 4
    assert sup.counters.steps_skipped == 4
    sps = run(sup, 0.36, 70)
    # Catching up from 0.0 toward the interpolated target 0.036 (never replaying the skipped steps) and
    # following it: the command ends on the last step.
    assert sps[0].positions[0] > 0.0
    assert sps[-2].positions[0] == pytest.approx(0.09, abs=1e-3)


def test_new_plan_is_cross_faded_over_blend_time(arm: SafetyLimits) -> None:
    cfg = SupervisorConfig(blend_mode="crossfade", blend_time_s=0.2)
    sup = started(arm, HOME, cfg)
    old = np.tile(HOME, (20, 1))
    new = np.tile(HOME, (20, 1))
    new[:, 0] = 0.1
    sup.push(make_plan(arm, old, t0=0.0, plan_id=1), 0.0)
    run(sup, 0.01, 49)
    sup.push(make_plan(arm, new, t0=0.5, plan_id=2, stamp_s=0.5), 0.5)
    # A fixed target arrives at 0.1 linearly between 0.5 and 0.7: the (unlimited-looking) target at
    # t is 0.1 * (t - 0.5) / 0.2; the stream follows it closely (within the small rate limits' lag).
    sps = run(sup, 0.5, 40)
    targets = [0.1 * min(max((k * DT) / 0.2, 0.0), 1.0) for k in range(40)]
    errors = [abs(sp.positions[0] - t) for sp, t in zip(sps, targets, strict=True)]
    assert max(errors) < 0.01
    assert sps[5].plan_id == 1 and sps[15].plan_id == 2  # dominant plan switches at half-way
    assert sps[-1].positions[0] == pytest.approx(0.1, abs=1e-9)


def test_replace_mode_switches_at_once(arm: SafetyLimits) -> None:
    sup = started(arm, HOME, SupervisorConfig(blend_mode="replace"))
    sup.push(make_plan(arm, np.tile(HOME, (20, 1)), t0=0.0, plan_id=1), 0.0)
    run(sup, 0.01, 49)
    new = np.tile(HOME, (20, 1))
    new[:, 0] = 0.1
    sup.push(make_plan(arm, new, t0=0.5, plan_id=2, stamp_s=0.5), 0.5)
    sps = run(sup, 0.5, 40)
    assert sps[1].plan_id == 2
    # The target jumped 0.1 rad at once; the limiter still respects the limits on the way.
    assert (sps[1].positions[0] < 0.1 and "acceleration" in sps[1].reasons) or "jerk" in sps[1].reasons


# --------------------------------------------------------------------------- watchdog and e-stop


def _moving(arm: SafetyLimits, config: SupervisorConfig) -> tuple[SafetySupervisor, list]:
    sup = started(arm, HOME, config)
    values = np.tile(HOME, (6, 1))
    values[:, 0] = np.linspace(0.0, 0.75, 6)  # 1.5 rad/s, ends at 0.5 s while moving
    sup.push(make_plan(arm, values, t0=0.0), 0.0)
    return sup, run(sup, 0.01, 50)


def test_watchdog_decelerate_brakes_to_rest_within_limits_then_holds(arm: SafetyLimits) -> None:
    sup, sps = _moving(arm, SupervisorConfig(watchdog_mode="decelerate"))
    after = run(sup, 0.51, 100)
    states = [sp.state for sp in after]
    assert OutputState.DECELERATING in states and states[-1] == OutputState.HOLDING
    assert sup.watchdog_active and sup.counters.watchdog_activations == 1
    pos = np.array([HOME] + [sp.positions for sp in sps + after])
    assert linear_violations(arm, pos) == []
    assert pos[-1, 0] > 0.75  # braking continues past the plan's end: no instantaneous stop
    np.testing.assert_array_equal(after[-1].velocities, 0.0)


def test_watchdog_hold_returns_to_last_setpoint_within_limits(arm: SafetyLimits) -> None:
    sup, sps = _moving(arm, SupervisorConfig(watchdog_mode="hold"))
    last = sps[-1].positions.copy()
    after = run(sup, 0.51, 150)
    assert all(sp.state == OutputState.HOLDING for sp in after)
    pos = np.array([HOME] + [sp.positions for sp in sps + after])
    assert linear_violations(arm, pos) == []
    np.testing.assert_allclose(after[-1].positions, last, atol=1e-9)


def test_estop_latches_until_explicit_reset(arm: SafetyLimits) -> None:
    sup, sps = _moving(arm, SupervisorConfig())
    sup.estop(0.3)
    assert sup.estop_latched
    after = run(sup, 0.51, 60)
    assert all(sp.state == OutputState.ESTOP for sp in after)
    assert after[-1].velocities.any() == False  # noqa: E712 - came to rest
    d = sup.push(make_plan(arm, np.tile(HOME, (50, 1)), t0=1.0, plan_id=2, stamp_s=1.1), 1.1)
    assert d.decision == Decision.REJECTED and d.reasons == ("estop",)
    held = after[-1].positions.copy()
    more = run(sup, 1.11, 30)
    np.testing.assert_array_equal(more[-1].positions, held)  # still latched: nothing moves
    assert not sup.reset_estop(1.5).cleared  # the e-stop input is still true (issue 9, defect 1)
    sup.estop_input_released(1.5)
    assert sup.reset_estop(1.5).cleared
    assert not sup.estop_latched
    assert sup.tick(1.51).state == OutputState.HOLDING  # watchdog until a new plan
    d = sup.push(make_plan(arm, np.tile(HOME, (50, 1)), t0=1.5, plan_id=3, stamp_s=1.5), 1.52)
    assert d.streamed
    assert sup.tick(1.53).state == OutputState.STREAMING
    pos = np.array([HOME] + [sp.positions for sp in sps + after + more])
    assert linear_violations(arm, pos) == []
    assert sup.counters.estops == 1


def test_config_validation_names_field() -> None:
    with pytest.raises(ValueError, match="watchdog_mode must be one of"):
        SupervisorConfig(watchdog_mode="freeze")
    with pytest.raises(ValueError, match="blend_time_s must be finite and >= 0"):
        SupervisorConfig(blend_time_s=-1.0)
    with pytest.raises(ValueError, match="control_rate_hz must be a number > 0"):
        SupervisorConfig(control_rate_hz=0.0)


def test_tick_requires_finite_now(arm: SafetyLimits) -> None:
    sup = SafetySupervisor(arm)
    with pytest.raises(ValueError, match="now must be a finite number"):
        sup.tick(math.nan)


def test_soft_start_outside_bounds_moves_back_inside_within_rate_limits(arm: SafetyLimits) -> None:
    outside = HOME.copy()
    outside[0] = 3.0  # bound 2.8973
    sup = started(arm, outside)
    values = np.tile(outside, (30, 1))
    sup.push(make_plan(arm, values, t0=0.0), 0.0)  # asks to stay outside: clamped into the bound
    sps = run(sup, 0.01, 200)
    pos = np.array([outside] + [sp.positions for sp in sps])
    assert pos[-1, 0] == pytest.approx(2.8973, abs=1e-9)
    assert np.all(np.diff(pos[:, 0]) <= 1e-15)  # only ever moves inward
    arr = arm.column_arrays(np.inf)
    rates = find_violations(
        pos,
        DT,
        max_velocity=arr["max_velocity"],
        max_acceleration=arr["max_acceleration"],
        max_jerk=arr["max_jerk"],
    )
    assert rates == []
