"""Latency accounting and the early trigger (cosmos_ros.latency), and the worker's start policy; no ROS.

Times are supplied by the tests (fake clocks), so every assertion is about the rule, not about the machine.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from cosmos_ros.inference_worker import (
    EARLY_STARTS,
    FRAMES_DEFERRED,
    INFERENCES,
    InferenceWorker,
    WorkerConfig,
)
from cosmos_ros.latency import (
    ChunkTiming,
    LatencyEstimator,
    StartDecision,
    TriggerConfig,
    decide_start,
    latency_warnings,
    trigger_steps,
)

PERIOD = 1.0 / 15.0


# ---- estimator ------------------------------------------------------------------------------------------
def test_estimator_is_empty_before_the_first_sample() -> None:
    est = LatencyEstimator()
    assert est.expected_s() is None
    assert est.stats().count == 0


def test_estimate_follows_a_step_change_up_quickly_and_down_after_a_window() -> None:
    est = LatencyEstimator(window=20)
    for _ in range(40):
        est.add(0.1)
    assert est.expected_s() == pytest.approx(0.1)
    est.add(0.5)
    est.add(0.5)
    # Two slow samples in a window of 20 already put the p95 on the new level (cautious side first).
    assert est.expected_s() == pytest.approx(0.5)
    for _ in range(18):
        est.add(0.5)
    st = est.stats()
    assert st.p95_s == pytest.approx(0.5) and st.max_s == pytest.approx(0.5)
    assert st.mean_s == pytest.approx(0.5, abs=1e-3)  # the EWMA converged too
    # Back down: the p95 stays high while slow samples remain in the window, then follows.
    for _ in range(10):
        est.add(0.2)
    assert est.expected_s() == pytest.approx(0.5)
    for _ in range(10):
        est.add(0.2)
    assert est.expected_s() == pytest.approx(0.2)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_estimator_rejects_impossible_samples(bad: float) -> None:
    with pytest.raises(ValueError, match="latency_s"):
        LatencyEstimator().add(bad)


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"window": 1}, "window"), ({"ewma_alpha": 0.0}, "ewma_alpha")]
)
def test_estimator_config_errors_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LatencyEstimator(**kwargs)


# ---- chunk timing and the early trigger ------------------------------------------------------------------
def test_steps_left_counts_steps_due_at_or_after_now() -> None:
    c = ChunkTiming(t0_s=10.0, step_period_s=0.1, num_steps=16)
    assert c.steps_left(9.0) == 16
    assert c.steps_left(10.0) == 16
    assert c.steps_left(10.05) == 15
    assert c.steps_left(10.1) == 15  # step 1 is due exactly now: still executed
    assert c.steps_left(11.5) == 1
    assert c.steps_left(11.51) == 0


def test_early_trigger_fires_at_the_configured_remaining_horizon() -> None:
    """latency 0.3 s at 10 Hz -> 3 steps, margin 1 -> fires when 4 steps are left, not one tick before."""
    chunk = ChunkTiming(t0_s=0.0, step_period_s=0.1, num_steps=16)
    cfg = TriggerConfig(early_trigger=True, chunk_size_threshold=0.0, early_trigger_margin_steps=1)
    assert trigger_steps(0.3, 0.1, 1) == 4
    fired = None
    for tick in range(0, 200):
        now = tick * 0.01
        if decide_start(now, chunk, 0.3, cfg) is StartDecision.NOW:
            fired = now
            break
        assert decide_start(now, chunk, 0.3, cfg) is StartDecision.WAIT
    assert fired is not None
    assert chunk.steps_left(fired) == 4
    assert chunk.steps_left(fired - 0.01) == 5
    # The next plan (started now, arriving 0.3 s later) lands with at least the margin's steps left.
    assert chunk.steps_left(fired + 0.3) >= 1


def test_without_early_trigger_the_rate_limit_rules_as_before() -> None:
    chunk = ChunkTiming(t0_s=0.0, step_period_s=0.1, num_steps=16)
    off = TriggerConfig(early_trigger=False)
    for now in (0.0, 1.2, 1.55, 5.0):
        assert decide_start(now, chunk, 0.3, off) is StartDecision.RATE_LIMITED


def test_chunk_size_threshold_has_lerobot_semantics() -> None:
    """A start is allowed once steps_left / chunk_size <= threshold (0.5: 8 of 16 steps left)."""
    chunk = ChunkTiming(t0_s=0.0, step_period_s=0.1, num_steps=16)
    cfg = TriggerConfig(early_trigger=False, chunk_size_threshold=0.5)
    first = None
    for tick in range(0, 200):
        now = tick * 0.01
        d = decide_start(now, chunk, None, cfg)
        assert d is not StartDecision.NOW  # no early trigger configured
        if d is StartDecision.RATE_LIMITED:
            first = now
            break
    assert first is not None
    assert chunk.steps_left(first) == 8
    assert chunk.steps_left(first - 0.01) == 9


def test_no_chunk_or_an_ended_chunk_or_no_estimate_never_fires_early() -> None:
    cfg = TriggerConfig()
    chunk = ChunkTiming(t0_s=0.0, step_period_s=0.1, num_steps=4)
    assert decide_start(0.0, None, 0.3, cfg) is StartDecision.RATE_LIMITED
    assert decide_start(1.0, chunk, 0.3, cfg) is StartDecision.RATE_LIMITED
    assert decide_start(0.0, chunk, None, cfg) is StartDecision.RATE_LIMITED  # threshold 1.0


def test_trigger_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="chunk_size_threshold"):
        TriggerConfig(chunk_size_threshold=1.5)
    with pytest.raises(ValueError, match="early_trigger_margin_steps"):
        TriggerConfig(early_trigger_margin_steps=-1)


# ---- budget warnings --------------------------------------------------------------------------------------
def test_warnings_name_what_to_change() -> None:
    assert latency_warnings(0.2, 16, PERIOD, 0.5, staleness_limit_s=0.5) == []
    (w,) = latency_warnings(0.6, 16, PERIOD, 0.5)
    for name in ("num_inference_steps", "chunk_size", "FP8", "backend", "latency_warn_fraction"):
        assert name in w
    both = latency_warnings(0.6, 16, PERIOD, 0.5, staleness_limit_s=0.5)
    assert len(both) == 2 and "staleness" in both[1]


# ---- the worker asks the start policy ----------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _wait(pred: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.005)
    return bool(pred())


def test_worker_starts_early_on_now_and_defers_on_wait() -> None:
    clock = FakeClock()
    decision = {"d": StartDecision.RATE_LIMITED}
    results: list[str] = []
    deferred: list[str] = []
    asked: list[StartDecision] = []  # the worker asks the policy only while a job is pending

    def policy() -> StartDecision:
        asked.append(decision["d"])
        return decision["d"]

    worker: InferenceWorker[str, str] = InferenceWorker(
        lambda job, goal: job,
        lambda job, goal, result, timing: results.append(result),
        lambda *a: None,
        WorkerConfig(max_plan_rate_hz=0.1, poll_period_s=0.01),  # next start allowed only after 10 s
        clock=clock,
        start_policy=policy,
        on_deferred=deferred.append,
    )
    worker.set_goal("g")
    worker.set_active(True)
    worker.start()
    try:
        worker.submit("a")
        assert _wait(lambda: results == ["a"])
        # The rate limit holds the next job (the fake clock does not advance) ...
        n = len(asked)
        worker.submit("b")
        assert _wait(lambda: len(asked) >= n + 3)  # "b" was held through several polls, not started
        assert results == ["a"] and deferred == []
        # ... WAIT drops it and says so (a lockstep simulator must get an answer for every frame) ...
        decision["d"] = StartDecision.WAIT
        assert _wait(lambda: deferred == ["b"])
        assert worker.counters.get(FRAMES_DEFERRED) == 1 and results == ["a"]
        # ... and NOW starts the next job although the rate limit would not allow it yet.
        decision["d"] = StartDecision.NOW
        worker.submit("c")
        assert _wait(lambda: results == ["a", "c"])
        assert worker.counters.get(EARLY_STARTS) == 1
        assert worker.counters.get(INFERENCES) == 2
    finally:
        worker.stop()


def test_a_failing_start_policy_falls_back_to_the_rate_limit() -> None:
    results: list[str] = []

    def policy() -> StartDecision:
        raise RuntimeError("bug")

    worker: InferenceWorker[str, str] = InferenceWorker(
        lambda job, goal: job,
        lambda job, goal, result, timing: results.append(result),
        lambda *a: None,
        WorkerConfig(poll_period_s=0.01),
        start_policy=policy,
    )
    worker.set_goal("g")
    worker.set_active(True)
    worker.start()
    try:
        worker.submit("a")
        assert _wait(lambda: results == ["a"])
        assert worker.counters.get("start_policy_failed") >= 1
    finally:
        worker.stop()


# ---- the safety node keeps authority over prefix-conditioned plans -----------------------------------------
def test_a_prefix_conditioned_plan_is_checked_clamped_and_scheduled_like_any_other() -> None:
    """The latency fields are information only: same decision, clamp and timing with or without them."""
    from pathlib import Path

    import numpy as np

    from cosmos_ros.plan import Plan
    from cosmos_ros.safety import SafetySupervisor, load_limits

    limits = load_limits(Path(__file__).resolve().parents[1] / "config" / "limits" / "arm7_joints.yaml")
    home = np.array([0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.0, 0.04])
    values = np.tile(home, (16, 1))
    values[:, 0] = np.linspace(0.0, 9.0, 16)  # far outside joint 1's bounds: must be clamped
    outcomes = []
    for extra in ({}, {"prefix_steps": 5, "expected_latency_s": 0.3, "latency_p95_s": 0.3}):
        sup = SafetySupervisor(limits)
        sup.activate(0.0)
        assert sup.set_measured(home, 0.0)
        assert sup.tick(0.0) is not None
        plan = Plan(
            plan_id=1,
            stamp_s=0.0,
            t0_s=0.05,
            step_period_s=0.1,
            axis_names=limits.axis_names,
            values=values,
            frame_id=limits.frame_id,
            action_space=limits.action_space,
            **extra,
        )
        decision = sup.push(plan, 0.1)
        ticks = [sup.tick(0.1 + k * 0.01) for k in range(50)]
        outcomes.append((decision, [None if t is None else np.asarray(t.positions).copy() for t in ticks]))
    (plain, plain_ticks), (pinned, pinned_ticks) = outcomes
    assert plain.decision == pinned.decision and pinned.decision.name == "CLAMPED"
    assert plain.steps_skipped == pinned.steps_skipped == 1  # step 0 (t0 = 0.05) is before now = 0.1
    for a, b in zip(plain_ticks, pinned_ticks, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
