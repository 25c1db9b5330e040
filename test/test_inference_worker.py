"""The planner's queueing rules, tested with a fake model and no ROS graph.

The model here is a function that blocks on an event, so each test decides exactly when an inference ends;
that is what lets us check "only the newest frame set", "one inference at a time" and "nothing after the goal
was withdrawn" deterministically instead of by sleeping and hoping.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cosmos_ros.inference_worker import (
    ERROR_HANDLER_FAILED,
    FRAMES_DROPPED,
    FRAMES_IGNORED,
    INFERENCES,
    PLANS_DELIVERED,
    RESULTS_DISCARDED,
    Counters,
    InferenceWorker,
    LogThrottle,
    RateWindow,
    WorkerConfig,
    WorkTiming,
)

TIMEOUT = 5.0


def _wait(pred: Any, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.005)
    return bool(pred())


class GatedModel:
    """A fake model: records (job, goal), then waits until the test opens the gate for that call."""

    def __init__(self, fail_on: set[Any] | None = None) -> None:
        self.calls: list[tuple[Any, str]] = []
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()
        self._gates: list[threading.Event] = []
        self.fail_on = fail_on or set()
        self.auto = False

    def __call__(self, job: Any, goal: str) -> str:
        with self._lock:
            self.calls.append((job, goal))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            gate = threading.Event()
            if self.auto:
                gate.set()
            self._gates.append(gate)
        try:
            assert gate.wait(TIMEOUT), "test never released the model"
            if job in self.fail_on:
                raise RuntimeError(f"model failed on {job}")
            return f"plan({job},{goal})"
        finally:
            with self._lock:
                self.running -= 1

    def release(self, n: int = 1) -> None:
        with self._lock:
            for g in self._gates:
                if not g.is_set() and n > 0:
                    g.set()
                    n -= 1

    def release_all(self) -> None:
        self.auto = True
        self.release(10**6)


class Sink:
    def __init__(self) -> None:
        self.results: list[tuple[Any, str, Any, WorkTiming]] = []
        self.errors: list[tuple[str, Any, BaseException]] = []

    def on_result(self, job: Any, goal: str, result: Any, timing: WorkTiming) -> None:
        self.results.append((job, goal, result, timing))

    def on_error(self, stage: str, job: Any, exc: BaseException) -> None:
        self.errors.append((stage, job, exc))


@pytest.fixture
def rig() -> Any:
    model = GatedModel()
    sink = Sink()
    worker: InferenceWorker[Any, Any] = InferenceWorker(
        model, sink.on_result, sink.on_error, WorkerConfig(max_plan_rate_hz=1000.0, poll_period_s=0.01)
    )
    worker.start()
    yield worker, model, sink
    model.release_all()
    assert worker.stop(TIMEOUT)


def test_config_validation_names_field_and_value() -> None:
    with pytest.raises(ValueError, match=r"max_plan_rate_hz must be .*> 0, got 0"):
        WorkerConfig(max_plan_rate_hz=0.0)
    with pytest.raises(ValueError, match=r"max_plan_rate_hz.*nan"):
        WorkerConfig(max_plan_rate_hz=float("nan"))
    with pytest.raises(ValueError, match="poll_period_s"):
        WorkerConfig(poll_period_s=-1.0)
    assert WorkerConfig(max_plan_rate_hz=4.0).min_period_s == 0.25


def test_no_goal_means_no_inference(rig: Any) -> None:
    worker, model, _ = rig
    worker.set_active(True)
    worker.submit("f1")
    time.sleep(0.1)
    assert model.calls == []
    assert worker.counters.get(FRAMES_IGNORED) == 1


def test_inactive_means_no_inference(rig: Any) -> None:
    worker, model, _ = rig
    worker.set_goal("pick")
    worker.submit("f1")
    time.sleep(0.1)
    assert model.calls == []
    assert worker.counters.get(FRAMES_IGNORED) == 1


def test_one_frame_one_plan_with_goal_and_timing(rig: Any) -> None:
    worker, model, sink = rig
    worker.set_active(True)
    worker.set_goal("pick the cube")
    worker.submit("f1")
    assert _wait(lambda: len(model.calls) == 1)
    model.release()
    assert _wait(lambda: len(sink.results) == 1)
    job, goal, result, timing = sink.results[0]
    assert (job, goal, result) == ("f1", "pick the cube", "plan(f1,pick the cube)")
    assert timing.submitted_s <= timing.started_s <= timing.finished_s
    assert timing.queue_time_s >= 0 and timing.inference_time_s >= 0
    assert worker.counters.get(PLANS_DELIVERED) == 1
    # The same frame set is never planned twice.
    time.sleep(0.05)
    assert len(model.calls) == 1


def test_only_newest_frame_set_used_and_drops_counted(rig: Any) -> None:
    worker, model, sink = rig
    worker.set_active(True)
    worker.set_goal("g")
    worker.submit("f1")
    assert _wait(lambda: len(model.calls) == 1)  # f1 is running, model blocked
    for f in ("f2", "f3", "f4"):
        worker.submit(f)
    model.release()
    assert _wait(lambda: len(model.calls) == 2)
    assert model.calls[1][0] == "f4"  # f2, f3 were replaced while waiting
    assert worker.counters.get(FRAMES_DROPPED) == 2
    model.release()
    assert _wait(lambda: len(sink.results) == 2)
    assert [r[0] for r in sink.results] == ["f1", "f4"]
    assert model.max_running == 1


def test_submit_never_waits_for_inference(rig: Any) -> None:
    worker, model, _ = rig
    worker.set_active(True)
    worker.set_goal("g")
    worker.submit("f1")
    assert _wait(lambda: len(model.calls) == 1)
    t0 = time.monotonic()
    for i in range(200):
        worker.submit(f"x{i}")
    worker.set_goal("h")  # goal changes do not wait either
    # Generous bound: this would take >= TIMEOUT if submit/set_goal waited for the blocked model.
    assert time.monotonic() - t0 < 1.0
    assert model.running == 1


def test_goal_change_discards_in_flight_result_and_next_plan_has_new_goal(rig: Any) -> None:
    worker, model, sink = rig
    worker.set_active(True)
    worker.set_goal("old")
    worker.submit("f1")
    assert _wait(lambda: len(model.calls) == 1)
    assert worker.set_goal("new") is True
    assert worker.set_goal("new") is False  # same goal again: no change
    worker.submit("f2")
    model.release()
    assert _wait(lambda: len(model.calls) == 2)
    model.release()
    assert _wait(lambda: len(sink.results) == 1)
    assert sink.results[0][:2] == ("f2", "new")
    assert worker.counters.get(RESULTS_DISCARDED) == 1


def test_empty_goal_stops_output_even_mid_inference(rig: Any) -> None:
    worker, model, sink = rig
    worker.set_active(True)
    worker.set_goal("g")
    worker.submit("f1")
    assert _wait(lambda: len(model.calls) == 1)
    worker.submit("f2")  # pending
    worker.set_goal("")
    model.release_all()
    assert worker.wait_idle(TIMEOUT)
    worker.submit("f3")
    time.sleep(0.1)
    assert sink.results == []
    assert len(model.calls) == 1  # f2 was dropped with the goal, f3 ignored
    assert worker.counters.get(RESULTS_DISCARDED) == 1
    assert worker.counters.get(FRAMES_IGNORED) == 1
    # A new goal resumes with the next frame set, not with a frame from before.
    worker.set_goal("again")
    worker.submit("f4")
    assert _wait(lambda: len(sink.results) == 1)
    assert sink.results[0][:2] == ("f4", "again")


def test_deactivate_discards_and_reactivate_resumes(rig: Any) -> None:
    worker, model, sink = rig
    worker.set_active(True)
    worker.set_goal("g")
    worker.submit("f1")
    assert _wait(lambda: len(model.calls) == 1)
    worker.set_active(False)
    model.release_all()
    assert worker.wait_idle(TIMEOUT)
    assert sink.results == []
    worker.set_active(True)
    worker.submit("f2")
    assert _wait(lambda: len(sink.results) == 1)
    assert sink.results[0][0] == "f2"


def test_model_exception_is_reported_and_worker_continues(rig: Any) -> None:
    worker, model, sink = rig
    model.fail_on = {"bad"}
    model.release_all()
    worker.set_active(True)
    worker.set_goal("g")
    worker.submit("bad")
    assert _wait(lambda: len(sink.errors) == 1)
    stage, job, exc = sink.errors[0]
    assert (stage, job) == ("run", "bad") and "model failed on bad" in str(exc)
    worker.submit("good")
    assert _wait(lambda: len(sink.results) == 1)
    assert sink.results[0][0] == "good"
    assert worker.counters.get(INFERENCES) == 2


def test_delivery_exception_is_reported_and_worker_continues() -> None:
    errors: list[tuple[str, Any, BaseException]] = []
    delivered: list[Any] = []

    def on_result(job: Any, goal: str, result: Any, timing: WorkTiming) -> None:
        if job == "explode":
            raise ValueError("cannot publish")
        delivered.append(job)

    worker: InferenceWorker[Any, Any] = InferenceWorker(
        lambda j, g: j, on_result, lambda s, j, e: errors.append((s, j, e)), WorkerConfig(1000.0, 0.01)
    )
    worker.start()
    try:
        worker.set_active(True)
        worker.set_goal("g")
        worker.submit("explode")
        assert _wait(lambda: len(errors) == 1)
        assert errors[0][0] == "deliver"
        worker.submit("ok")
        assert _wait(lambda: delivered == ["ok"])
        assert worker.counters.get(PLANS_DELIVERED) == 1
    finally:
        assert worker.stop(TIMEOUT)


def test_failing_error_handler_does_not_end_the_worker() -> None:
    delivered: list[Any] = []

    def run(job: Any, goal: str) -> Any:
        if job == "bad":
            raise RuntimeError("model failed")
        return job

    def on_error(stage: str, job: Any, exc: BaseException) -> None:
        raise ValueError("logging is broken too")

    worker: InferenceWorker[Any, Any] = InferenceWorker(
        run, lambda j, g, r, t: delivered.append(j), on_error, WorkerConfig(1000.0, 0.01)
    )
    worker.start()
    try:
        worker.set_active(True)
        worker.set_goal("g")
        worker.submit("bad")
        assert _wait(lambda: worker.counters.get(ERROR_HANDLER_FAILED) == 1)
        worker.submit("ok")
        assert _wait(lambda: delivered == ["ok"])
    finally:
        assert worker.stop(TIMEOUT)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.t

    def advance(self, dt: float) -> None:
        with self._lock:
            self.t += dt


def test_rate_limit_uses_newest_frame_after_waiting() -> None:
    clock = FakeClock()
    sink = Sink()
    calls: list[Any] = []

    def run(job: Any, goal: str) -> Any:
        calls.append(job)
        return job

    worker: InferenceWorker[Any, Any] = InferenceWorker(
        run,
        sink.on_result,
        sink.on_error,
        WorkerConfig(max_plan_rate_hz=2.0, poll_period_s=0.005),
        clock=clock,
    )
    worker.start()
    try:
        worker.set_active(True)
        worker.set_goal("g")
        worker.submit("f1")
        assert _wait(lambda: len(sink.results) == 1)
        # Within 0.5 s (fake) of the first start nothing may start, however many frames arrive.
        for i, f in enumerate(("f2", "f3", "f4")):
            clock.advance(0.1)
            worker.submit(f)
            time.sleep(0.03)
            assert calls == ["f1"], f"started early at step {i}"
        clock.advance(0.21)  # 0.51 s after the first start
        assert _wait(lambda: len(sink.results) == 2)
        assert calls == ["f1", "f4"]
        assert worker.counters.get(FRAMES_DROPPED) == 2
        assert sink.results[1][3].queue_time_s == pytest.approx(0.21, abs=1e-9)
    finally:
        assert worker.stop(TIMEOUT)


def test_stop_is_bounded_and_idempotent_start() -> None:
    worker: InferenceWorker[Any, Any] = InferenceWorker(
        lambda j, g: j, lambda *a: None, lambda *a: None, WorkerConfig(1.0, 0.01)
    )
    worker.start()
    worker.start()
    t0 = time.monotonic()
    assert worker.stop(2.0)
    assert time.monotonic() - t0 < 1.0


def test_log_throttle_once_per_cause_then_periodic_with_suppressed_count() -> None:
    th = LogThrottle(period_s=5.0)
    assert th.check("encoding", 0.0) == 0
    assert th.check("encoding", 1.0) is None
    assert th.check("encoding", 2.0) is None
    assert th.check("size", 2.0) == 0  # another cause is logged on its own
    assert th.check("encoding", 5.0) == 2
    assert th.check("encoding", 6.0) is None
    with pytest.raises(ValueError, match="period_s"):
        LogThrottle(0.0)


def test_rate_window() -> None:
    w = RateWindow(size=5)
    assert w.rate_hz(0.0) == 0.0
    for i in range(5):
        w.add(10.0 + 0.5 * i, 0.1 * (i + 1))
    assert w.rate_hz(12.0) == pytest.approx(2.0)
    assert w.mean_duration_s() == pytest.approx(0.3)
    assert w.last_duration_s() == pytest.approx(0.5)
    assert w.rate_hz(100.0) == 0.0  # all events older than the horizon: planning has stopped


def test_counters_snapshot_is_a_copy() -> None:
    c = Counters()
    c.add("a")
    c.add("a", 2)
    snap = c.snapshot()
    c.add("a")
    assert snap == {"a": 3} and c.get("a") == 4 and c.get("missing") == 0
