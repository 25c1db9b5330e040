"""Regression tests for the six defects of issue 9 (an independent review of the safety layer).

Each test reproduces the defect as the review described it and failed on the code before its fix:

1. ``~/reset_estop`` succeeded while the last e-stop input was still true.
2. A long plan stalled the control loop (here: the plan-length bound; the tick gap over DDS is measured by
   ``test_safety_node.py::test_longest_allowed_plan_does_not_stall_the_tick``).
3. An older plan resumed after a shorter, newer plan ended.
4. ``estop_mode: hold`` walked the command toward a measured state that moved during the latch.
5. An implausible measured state (1e308) became the first setpoint.
6. Duplicate keys in a limits file (and in any YAML the package loads) were accepted, the last one winning.

Core only: times are passed in, no ROS graph, no sleep.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cosmos_ros.action_space import load_profile
from cosmos_ros.plan import Plan
from cosmos_ros.safety import (
    Decision,
    LimitsError,
    OutputState,
    SafetyLimits,
    SafetySupervisor,
    SupervisorConfig,
    load_limits,
)
from cosmos_ros.safety.verify import find_violations

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "limits"
DT = 0.01
HOME = np.array([0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.0, 0.04])


@pytest.fixture
def arm() -> SafetyLimits:
    return load_limits(CONFIG / "arm7_joints.yaml")


def make_plan(limits: SafetyLimits, values: np.ndarray, *, plan_id: int, t0: float, **kw: object) -> Plan:
    fields: dict[str, object] = dict(
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
    return Plan(**fields)  # type: ignore[arg-type]


def started(limits: SafetyLimits, config: SupervisorConfig | None = None) -> SafetySupervisor:
    sup = SafetySupervisor(limits, config)
    sup.activate(0.0)
    assert sup.set_measured(HOME, 0.0)
    assert sup.tick(0.0) is not None
    return sup


def run(sup: SafetySupervisor, t0: float, ticks: int, track: bool = True) -> list:
    out = []
    for k in range(ticks):
        t = t0 + k * DT
        sp = sup.tick(t)
        out.append(sp)
        if track and sp is not None:
            sup.set_measured(sp.positions, t)
    return out


def rates_ok(limits: SafetyLimits, positions: np.ndarray) -> list:
    arr = limits.column_arrays(np.inf)
    return find_violations(
        positions,
        DT,
        min_position=arr["min_position"],
        max_position=arr["max_position"],
        max_velocity=arr["max_velocity"],
        max_acceleration=arr["max_acceleration"],
        max_jerk=arr["max_jerk"],
    )


# --- (1) e-stop reset while the input is asserted --------------------------------------------------------
def test_1_reset_refused_while_last_estop_input_is_true(arm: SafetyLimits) -> None:
    sup = started(arm)
    sup.estop(0.1)  # `estop: true` once, nothing after
    refused = sup.reset_estop(5.0)
    assert not refused.cleared and "still true" in refused.message
    assert sup.estop_latched
    d = sup.push(make_plan(arm, np.tile(HOME, (20, 1)), plan_id=1, t0=5.0), 5.0)
    assert d.decision == Decision.REJECTED and d.reasons == ("estop",)


def test_1_reset_refused_within_release_hold_after_last_true(arm: SafetyLimits) -> None:
    sup = started(arm, SupervisorConfig(estop_release_hold_s=0.5))
    sup.estop(0.1)
    sup.estop(0.2)  # a periodic input: true, true, then false
    sup.estop_input_released(0.25)
    early = sup.reset_estop(0.6)  # 0.4 s after the last true < 0.5 s
    assert not early.cleared and "0.5" in early.message
    assert sup.estop_latched
    sup.estop(0.65)  # true again: the hold restarts from here
    sup.estop_input_released(0.7)
    assert not sup.reset_estop(1.1).cleared
    ok = sup.reset_estop(1.2)
    assert ok.cleared and not sup.estop_latched


def test_1_release_hold_must_be_explicit_and_positive() -> None:
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="estop_release_hold_s"):
            SupervisorConfig(estop_release_hold_s=bad)


def test_1_clock_jumping_back_does_not_shorten_the_hold(arm: SafetyLimits) -> None:
    sup = started(arm, SupervisorConfig(estop_release_hold_s=0.5))
    sup.estop(10.0)
    sup.estop_input_released(10.0)
    assert not sup.reset_estop(2.0).cleared  # /clock went back: the hold counts from the jump
    assert not sup.reset_estop(2.4).cleared
    assert sup.reset_estop(2.6).cleared


# --- (2) plan length -------------------------------------------------------------------------------------
def test_2_plan_longer_than_max_plan_steps_is_rejected_with_reason(arm: SafetyLimits) -> None:
    sup = started(arm)
    n = arm.max_plan_steps
    ok = sup.push(make_plan(arm, np.tile(HOME, (n, 1)), plan_id=1, t0=0.0, step_period_s=0.01), 0.0)
    assert ok.streamed
    d = sup.push(make_plan(arm, np.tile(HOME, (n + 1, 1)), plan_id=2, t0=0.0, step_period_s=0.01), 0.0)
    assert d.decision == Decision.REJECTED and d.reasons == ("plan_length",)
    assert str(n) in d.message


def test_2_max_plan_steps_is_required_in_limits_files(tmp_path: Path) -> None:
    text = (CONFIG / "arm7_joints.yaml").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("max_plan_steps:")]
    path = tmp_path / "no_len.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LimitsError, match="max_plan_steps"):
        load_limits(path)


def test_2_check_and_clamp_run_outside_the_commit(arm: SafetyLimits) -> None:
    """The expensive part (``prepare``) changes no supervisor state; ticks between prepare and commit run."""
    sup = started(arm)
    values = np.tile(HOME, (arm.max_plan_steps, 1))
    values[:, 0] = np.linspace(0.0, 0.5, len(values))
    prepared = sup.prepare(make_plan(arm, values, plan_id=1, t0=0.0, step_period_s=0.01), 0.0)
    before = sup.counters
    between = run(sup, 0.01, 3)  # the control loop keeps ticking while the plan is checked
    assert all(sp.state == OutputState.HOLDING for sp in between)
    assert sup.counters.plans_received == before.plans_received
    d = sup.commit(prepared, 0.04)
    assert d.streamed
    assert sup.tick(0.05).state == OutputState.STREAMING


def test_2_commit_rechecks_what_changed_meanwhile(arm: SafetyLimits) -> None:
    sup = started(arm)
    p1 = sup.prepare(make_plan(arm, np.tile(HOME, (20, 1)), plan_id=5, t0=0.0), 0.0)
    p2 = sup.prepare(make_plan(arm, np.tile(HOME, (20, 1)), plan_id=4, t0=0.0), 0.0)
    assert sup.commit(p1, 0.0).streamed
    late = sup.commit(p2, 0.0)  # prepared before 5 was committed: its id no longer increases
    assert late.decision == Decision.REJECTED and late.reasons == ("plan_id",)
    p3 = sup.prepare(make_plan(arm, np.tile(HOME, (20, 1)), plan_id=6, t0=0.0), 0.0)
    sup.estop(0.01)
    assert sup.commit(p3, 0.01).reasons == ("estop",)


# --- (3) an older plan resuming --------------------------------------------------------------------------
@pytest.mark.parametrize("blend_mode", ["crossfade", "replace"])
def test_3_older_plan_never_resumes_after_a_shorter_newer_plan(arm: SafetyLimits, blend_mode: str) -> None:
    sup = started(arm, SupervisorConfig(blend_mode=blend_mode, blend_time_s=0.2))
    old = np.tile(HOME, (20, 1))
    old[:, 0] = np.linspace(0.0, 0.6, 20)  # runs until t = 1.9 s
    assert sup.push(make_plan(arm, old, plan_id=1, t0=0.0), 0.0).streamed
    first = run(sup, 0.01, 50)
    assert first[-1].plan_id == 1
    short = np.tile(first[-1].positions, (3, 1))  # 0.1 s long: shorter than the cross-fade window
    assert sup.push(make_plan(arm, short, plan_id=2, t0=0.5, step_period_s=0.05), 0.5).streamed
    after = run(sup, 0.51, 150)
    ids = [sp.plan_id for sp in after]
    end = next(i for i, sp in enumerate(after) if sp.stamp_s > 0.6 + 1e-9)
    assert 1 not in ids[end:], f"plan 1 resumed after plan 2 ended: {ids}"
    assert all(sp.state in (OutputState.DECELERATING, OutputState.HOLDING) for sp in after[end:])
    pos = np.array([HOME] + [sp.positions for sp in first + after])
    assert rates_ok(arm, pos) == []


def test_3_nested_blends_do_not_resume_the_oldest(arm: SafetyLimits) -> None:
    sup = started(arm, SupervisorConfig(blend_time_s=0.5))
    a = np.tile(HOME, (30, 1))
    a[:, 1] = np.linspace(0.0, 0.3, 30)
    b = a.copy()
    b[:, 1] += 0.05
    assert sup.push(make_plan(arm, a, plan_id=1, t0=0.0), 0.0).streamed
    seen = run(sup, 0.01, 20)
    assert sup.push(make_plan(arm, b[:12], plan_id=2, t0=0.2), 0.2).streamed  # until 1.3 s
    seen += run(sup, 0.21, 10)
    assert sup.push(make_plan(arm, b[3:5], plan_id=3, t0=0.3, step_period_s=0.05), 0.3).streamed  # 0.35 s
    rest = run(sup, 0.31, 200)
    ids = [sp.plan_id for sp in rest if sp.stamp_s > 0.35 + 1e-9]
    assert not ({1, 2} & set(ids)), ids


# --- (4) hold mode while latched -------------------------------------------------------------------------
def test_4_estop_hold_does_not_follow_a_moving_measured_state(arm: SafetyLimits) -> None:
    sup = started(arm, SupervisorConfig(estop_mode="hold"))
    sup.estop(0.05)
    held = sup.tick(0.06)
    assert held is not None
    out = []
    for k in range(300):
        t = 0.07 + k * DT
        moved = HOME.copy()
        moved[0] += min(0.01 * (k + 1), 1.0)  # the arm is pushed 1 rad away during the latch, at 1 rad/s
        assert sup.set_measured(moved, t)
        out.append(sup.tick(t))
    assert all(sp.state == OutputState.ESTOP for sp in out)
    np.testing.assert_array_equal(np.array([sp.positions for sp in out]), np.tile(held.positions, (300, 1)))


@pytest.mark.parametrize("mode", ["hold", "decelerate"])
def test_4_latched_output_only_brakes_when_moving(arm: SafetyLimits, mode: str) -> None:
    sup = started(arm, SupervisorConfig(estop_mode=mode))
    values = np.tile(HOME, (20, 1))
    values[:, 0] = np.linspace(0.0, 1.5, 20)
    sup.push(make_plan(arm, values, plan_id=1, t0=0.0), 0.0)
    moving = run(sup, 0.01, 40)
    sup.estop(0.4)
    out = []
    for k in range(200):
        t = 0.41 + k * DT
        moved = moving[-1].positions.copy()
        moved[0] -= min(0.01 * (k + 1), 0.8)  # the measured state moves back 0.8 rad during the latch
        assert sup.set_measured(moved, t)
        out.append(sup.tick(t))
    v = np.array([sp.velocities[0] for sp in out])
    assert np.all(v >= -1e-12), "the latched command reversed"
    assert np.all(np.diff(np.abs(v)) <= 1e-12), "the latched command sped up"
    assert out[-1].velocities.any() == False  # noqa: E712 - at rest
    pos = np.array([HOME] + [sp.positions for sp in moving + out])
    assert rates_ok(arm, pos) == []


# --- (5) implausible measured state ----------------------------------------------------------------------
def test_5_implausible_measured_state_is_refused_at_soft_start(arm: SafetyLimits) -> None:
    sup = SafetySupervisor(arm)
    sup.activate(0.0)
    bad = HOME.copy()
    bad[0] = 1e308
    assert not sup.set_measured(bad, 0.0)
    assert sup.tick(0.0) is None  # nothing streams
    assert sup.output_state == OutputState.WAITING_FOR_STATE
    assert sup.counters.measured_rejected_by_reason == {"implausible": 1}
    assert "panda_joint1" in sup.measured_problem
    assert sup.set_measured(HOME, 0.01)  # plausible again: recovers with a soft start there
    sp = sup.tick(0.02)
    assert sp is not None
    np.testing.assert_array_equal(sp.positions, HOME)
    assert sup.measured_problem == ""


def test_5_implausible_state_while_streaming_stops_the_stream_until_plausible(arm: SafetyLimits) -> None:
    sup = started(arm)
    values = np.tile(HOME, (20, 1))
    values[:, 0] = np.linspace(0.0, 0.5, 20)
    sup.push(make_plan(arm, values, plan_id=1, t0=0.0), 0.0)
    run(sup, 0.01, 20)
    bad = HOME.copy()
    bad[0] = arm.axes[0].max_position + arm.axes[0].measured_plausibility_margin + 0.01
    assert not sup.set_measured(bad, 0.21)
    assert [sup.tick(0.21 + k * DT) for k in range(5)] == [None] * 5
    d = sup.push(make_plan(arm, values, plan_id=2, t0=0.3), 0.3)
    assert d.decision == Decision.REJECTED and d.reasons == ("measured_state",)
    near = HOME.copy()
    near[0] = 0.2
    assert sup.set_measured(near, 0.31)
    sp = sup.tick(0.32)
    assert sp is not None and sp.state == OutputState.HOLDING
    np.testing.assert_array_equal(sp.positions, near)  # soft start from where the arm is


def test_5_within_margin_is_plausible(arm: SafetyLimits) -> None:
    sup = SafetySupervisor(arm)
    sup.activate(0.0)
    edge = HOME.copy()
    edge[0] = arm.axes[0].max_position + 0.5 * arm.axes[0].measured_plausibility_margin
    assert sup.set_measured(edge, 0.0)


def test_5_jump_faster_than_possible_is_refused(arm: SafetyLimits) -> None:
    assert arm.measured_max_speed_factor is None  # off in the shipped file (see its comment)
    sup = started(dataclasses.replace(arm, measured_max_speed_factor=2.0))
    jump = HOME.copy()
    jump[1] += 0.5  # 0.5 rad in 10 ms = 50 rad/s, limit 2.175 rad/s (x measured_max_speed_factor)
    assert not sup.set_measured(jump, 0.01)
    assert sup.counters.measured_rejected_by_reason == {"implausible_jump": 1}
    assert sup.tick(0.01) is None
    # Plausible again (the jumped value, repeated, is consistent with itself): soft start there.
    assert sup.set_measured(jump, 0.02)
    sp = sup.tick(0.02)
    assert sp is not None
    np.testing.assert_array_equal(sp.positions, jump)


# --- (6) duplicate YAML keys -----------------------------------------------------------------------------
def _with_duplicate(text: str, anchor: str, extra: str) -> str:
    assert anchor in text
    return text.replace(anchor, anchor + "\n" + extra, 1)


@pytest.mark.parametrize(
    ("anchor", "extra", "key"),
    [
        ("control_rate_hz: 100.0", "control_rate_hz: 1000.0", "control_rate_hz"),
        ("    max_velocity: 2.175", "    max_velocity: 20.0", "max_velocity"),
    ],
)
def test_6_duplicate_key_in_limits_file_is_refused_naming_it(
    tmp_path: Path, anchor: str, extra: str, key: str
) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(_with_duplicate((CONFIG / "arm7_joints.yaml").read_text(), anchor, extra))
    with pytest.raises(LimitsError, match=f"duplicate key '{key}'"):
        load_limits(path)


def test_6_duplicate_key_in_action_space_profile_is_refused(tmp_path: Path) -> None:
    src = (ROOT / "config" / "action_spaces" / "arm7_joints.yaml").read_text()
    path = tmp_path / "arm7_joints.yaml"
    path.write_text(_with_duplicate(src, "action_rate_hz: 15.0", "action_rate_hz: 150.0"))
    with pytest.raises(ValueError, match="duplicate key 'action_rate_hz'"):
        load_profile(path)


def test_6_every_yaml_the_package_ships_has_unique_keys() -> None:
    from cosmos_ros.yaml_loading import load_yaml_unique

    files = sorted((ROOT / "config").rglob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        load_yaml_unique(f.read_text(), str(f))
