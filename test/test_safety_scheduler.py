"""ChunkScheduler on its own: step timing, interpolation, skipped steps, cross-fade arithmetic, coverage."""

from __future__ import annotations

import numpy as np
import pytest

from cosmos_ros.safety import ChunkScheduler, ScheduledPlan, SchedulerConfig


def _plan(plan_id: int, t0: float, values: list[list[float]], period: float = 0.1) -> ScheduledPlan:
    return ScheduledPlan(plan_id, t0, period, np.array(values, dtype=np.float64))


def _target(s: ChunkScheduler, t: float) -> tuple[int | None, np.ndarray, np.ndarray]:
    p, v = np.full(1, np.nan), np.full(1, np.nan)
    pid = s.target(t, p, v)
    return pid, p, v


def test_steps_are_targets_at_their_times_and_interpolated_between() -> None:
    s = ChunkScheduler()
    assert s.push(_plan(1, 1.0, [[0.0], [1.0], [3.0]]), 1.0) == 0
    assert _target(s, 1.0)[1][0] == 0.0
    pid, p, v = _target(s, 1.05)
    assert pid == 1 and p[0] == pytest.approx(0.5) and v[0] == pytest.approx(10.0)
    assert _target(s, 1.15)[1][0] == pytest.approx(2.0)
    assert _target(s, 1.2)[1][0] == pytest.approx(3.0)
    assert _target(s, 1.2001)[0] is None  # ran out: the watchdog's turn


def test_future_plan_does_not_cover_now_and_past_steps_are_counted() -> None:
    s = ChunkScheduler()
    s.push(_plan(1, 2.0, [[0.0], [1.0]]), 1.0)
    assert _target(s, 1.5)[0] is None
    assert _target(s, 2.0)[0] == 1
    plan = _plan(2, 0.0, [[0.0]] * 10)
    assert plan.steps_before(0.35) == 4  # 0.0, 0.1, 0.2, 0.3
    assert plan.steps_before(0.3) == 3
    with pytest.raises(ValueError, match="all 10 steps are before now"):
        ChunkScheduler().push(plan, 5.0)


def test_crossfade_is_linear_from_old_to_new_over_blend_time() -> None:
    s = ChunkScheduler(SchedulerConfig("crossfade", 0.2))
    s.push(_plan(1, 0.0, [[0.0]] * 20), 0.0)
    s.push(_plan(2, 0.5, [[1.0]] * 20), 0.45)  # arrives before its t0: blend starts at t0 = 0.5
    assert _target(s, 0.49)[1][0] == 0.0
    for t, expected in [(0.5, 0.0), (0.55, 0.25), (0.6, 0.5), (0.65, 0.75), (0.7, 1.0), (1.0, 1.0)]:
        pid, p, v = _target(s, t)
        assert p[0] == pytest.approx(expected), t
        assert pid == (1 if t < 0.6 else 2) or t == 0.6  # dominant plan switches at half-way
        if 0.5 < t < 0.7:
            assert v[0] == pytest.approx(1.0 / 0.2)  # d/dt of the fade weight times (new - old)


def test_replace_switches_at_the_first_covered_tick() -> None:
    s = ChunkScheduler(SchedulerConfig("replace"))
    s.push(_plan(1, 0.0, [[0.0]] * 20), 0.0)
    s.push(_plan(2, 0.5, [[1.0]] * 20), 0.3)
    assert _target(s, 0.49)[1][0] == 0.0
    assert _target(s, 0.5)[1][0] == 1.0


def test_nested_blends_stay_bounded_and_end_on_newest() -> None:
    s = ChunkScheduler(SchedulerConfig("crossfade", 0.5))
    for k in range(8):
        s.push(_plan(k + 1, 0.1 * k, [[float(k)]] * 30), 0.1 * k)
        _, p, _ = _target(s, 0.1 * k + 0.01)
        assert 0.0 <= p[0] <= k  # a convex combination of the plans' targets
    assert _target(s, 3.0)[1][0] == 7.0


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="blend_mode must be one of"):
        SchedulerConfig("ensemble")
    with pytest.raises(ValueError, match="step_period_s must be finite and > 0"):
        _plan(1, 0.0, [[0.0]], period=0.0)
