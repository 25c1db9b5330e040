"""Chunk-switch metrics of the real-time table (cosmos_ros.sim.switch_metrics): hand-made plans and setpoints
with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cosmos_ros.sim.switch_metrics import PlanSample, plan_jumps, setpoint_switch_stats


def _plan(pid: int, t0: float, values: list[float], goal: str = "touch the red cube") -> PlanSample:
    v = np.array(values, dtype=np.float64)[:, None] * np.ones((1, 2))
    v[:, 1] *= -1.0
    return PlanSample(pid, goal, t0 + 0.1 * np.arange(len(values)), v)


def test_plan_jump_is_the_disagreement_at_the_switch_time():
    a = _plan(1, 0.0, [0.0, 0.1, 0.2, 0.3])  # a ramp
    b = _plan(2, 0.15, [0.5, 0.5, 0.5])  # disagrees with a by 0.5 - 0.15 at t = 0.15
    c = _plan(3, 0.30, [0.5, 0.6])  # agrees with b (held at its last value) at t = 0.3
    jumps = plan_jumps([a, b, c], {1: 0.0, 2: 0.15, 3: 0.30})
    assert jumps == pytest.approx([0.35, 0.0])


def test_unstreamed_plans_goal_changes_and_gaps_are_not_switches():
    a = _plan(1, 0.0, [0.0, 0.0])
    rejected = _plan(2, 0.1, [9.0, 9.0])  # no switch time: never followed, a stays current
    b = _plan(3, 0.2, [0.2, 0.2])
    other_goal = _plan(4, 0.3, [5.0, 5.0], goal="touch the blue cube")
    late = _plan(5, 10.0, [7.0, 7.0], goal="touch the blue cube")
    jumps = plan_jumps([a, rejected, b, other_goal, late], {1: 0.0, 3: 0.2, 4: 0.3, 5: 10.0}, max_gap_s=5.0)
    assert jumps == pytest.approx([0.2])


def test_plan_sample_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="times"):
        PlanSample(1, "", np.zeros(3), np.zeros((2, 7)))


def test_setpoint_switch_stats_see_a_kink_only_near_a_switch():
    dt = 0.01
    t = np.arange(100) * dt
    sp = np.where(t < 0.5, 0.0, (t - 0.5) * 1.0)[:, None]  # velocity steps 0 -> 1 rad/s at tick 50
    jerk, dv = setpoint_switch_stats(sp, dt, [50], window=4)
    assert dv == pytest.approx(1.0) and jerk > 0
    assert setpoint_switch_stats(sp, dt, [10], window=4) == (0.0, 0.0)  # no switch near the kink
    assert setpoint_switch_stats(sp[:2], dt, [1]) == (0.0, 0.0)  # too short to difference
