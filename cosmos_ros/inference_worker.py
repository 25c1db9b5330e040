"""Latest-only inference worker: the planner's queueing, rate limiting and goal gating, without ROS.

Why a separate module: the rules that decide *which* frame set becomes a plan (only the newest, at most one
inference at a time, never faster than the plan-rate limit, never after the goal was withdrawn) are where a
planner goes wrong, and they must be testable with a fake model and a fake clock, not only through DDS. The
planner node (``cosmos_ros.nodes.planner_node``) owns the ROS side: it submits converted frame sets from its
subscription callbacks and turns finished results into messages.

Threading model:
- Callbacks call ``submit`` / ``set_goal`` / ``set_active``; these only take a lock and replace state, so they
  never wait for an inference.
- One worker thread takes the newest pending job, runs the model, and reports the result or the error.
- Every change that makes an in-flight inference obsolete (new goal, empty goal, deactivation) bumps an
  *epoch*; a result computed under an older epoch is discarded (counted), never delivered. This is how "an
  empty goal stops planning, nothing further is published" holds even while an inference is running.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from cosmos_ros.latency import StartDecision

JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")

# Counter names used by the worker (the node adds its own rejection causes next to them).
FRAMES_SUBMITTED = "frames_submitted"
FRAMES_DROPPED = "frames_dropped"  # replaced by a newer frame set before the worker took them
FRAMES_IGNORED = "frames_ignored"  # arrived while there was no goal or the worker was inactive
RESULTS_DISCARDED = "results_discarded"  # inference finished after its goal was replaced/withdrawn
INFERENCES = "inferences"
PLANS_DELIVERED = "plans_delivered"
ERROR_HANDLER_FAILED = "error_handler_failed"  # on_error raised; the worker carries on regardless
EARLY_STARTS = "early_starts"  # started before the rate limit allowed: the early trigger fired
FRAMES_DEFERRED = "frames_deferred"  # dropped because the executing plan still had enough steps left
START_POLICY_FAILED = "start_policy_failed"


@dataclass(frozen=True)
class WorkTiming:
    """Times of one inference, seconds on the worker's clock.

    Attributes:
        submitted_s: When the job was submitted (the newest frame set arrived).
        started_s: When inference started.
        finished_s: When inference returned.
    """

    submitted_s: float
    started_s: float
    finished_s: float

    @property
    def queue_time_s(self) -> float:
        """How long the job waited for the worker (rate limit, previous inference)."""
        return self.started_s - self.submitted_s

    @property
    def inference_time_s(self) -> float:
        return self.finished_s - self.started_s


@dataclass(frozen=True)
class WorkerConfig:
    """Worker settings.

    Attributes:
        max_plan_rate_hz: Upper bound on inference starts per second (> 0). Inference slower than this simply
            runs back to back on the newest frames.
        poll_period_s: Longest time the worker sleeps before re-checking for stop (> 0); bounds how long
            ``stop`` waits for an idle worker.
    """

    max_plan_rate_hz: float = 2.0
    poll_period_s: float = 0.1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_plan_rate_hz) and self.max_plan_rate_hz > 0):
            raise ValueError(f"max_plan_rate_hz must be a finite number > 0, got {self.max_plan_rate_hz}")
        if not (math.isfinite(self.poll_period_s) and self.poll_period_s > 0):
            raise ValueError(f"poll_period_s must be a finite number > 0, got {self.poll_period_s}")

    @property
    def min_period_s(self) -> float:
        return 1.0 / self.max_plan_rate_hz


class Counters:
    """Thread-safe named counters (frames dropped, rejections by cause, ...), read as one snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class RateWindow:
    """Event rate and mean duration over a sliding window of the last ``size`` events (thread-safe).

    Why a window and not a lifetime average: diagnostics should show the current plan rate, which drops to 0
    when planning stops, not an average dominated by the past.
    """

    def __init__(self, size: int = 20) -> None:
        if size < 2:
            raise ValueError(f"size must be >= 2, got {size}")
        self._lock = threading.Lock()
        self._times: deque[float] = deque(maxlen=size)
        self._durations: deque[float] = deque(maxlen=size)

    def add(self, now: float, duration_s: float) -> None:
        with self._lock:
            self._times.append(now)
            self._durations.append(duration_s)

    def rate_hz(self, now: float, horizon_s: float = 10.0) -> float:
        """Events per second among those within ``horizon_s`` before ``now`` (0.0 with fewer than two)."""
        with self._lock:
            recent = [t for t in self._times if now - t <= horizon_s]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def mean_duration_s(self) -> float:
        with self._lock:
            return sum(self._durations) / len(self._durations) if self._durations else 0.0

    def last_duration_s(self) -> float:
        with self._lock:
            return self._durations[-1] if self._durations else 0.0


class LogThrottle:
    """Decides when a repeated problem is logged: the first time per cause, then at most once per period.

    Why: bad input can arrive at camera rate (30 Hz); logging every frame floods the console and the disk,
    logging only once hides that it continues. ``check`` returns how many occurrences were suppressed since
    the last log line, so the next line can say so.
    """

    def __init__(self, period_s: float) -> None:
        if not (math.isfinite(period_s) and period_s > 0):
            raise ValueError(f"period_s must be a finite number > 0, got {period_s}")
        self._period_s = period_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def check(self, cause: str, now: float) -> int | None:
        """Return the number of suppressed occurrences if this one should be logged, else ``None``."""
        with self._lock:
            last = self._last.get(cause)
            if last is None or now - last >= self._period_s:
                self._last[cause] = now
                return self._suppressed.pop(cause, 0)
            self._suppressed[cause] = self._suppressed.get(cause, 0) + 1
            return None


@dataclass
class _Pending(Generic[JobT]):
    job: JobT
    submitted_s: float


@dataclass
class _State(Generic[JobT]):
    goal: str = ""
    active: bool = False
    epoch: int = 0
    pending: _Pending[JobT] | None = None
    next_start_s: float = -math.inf
    busy: bool = False
    stop: bool = False


class InferenceWorker(Generic[JobT, ResultT]):
    """Runs ``run(job, goal)`` on one background thread for the newest submitted job.

    Args:
        run: The model call. Called on the worker thread only, never concurrently with itself.
        on_result: Called on the worker thread with ``(job, goal, result, timing)`` for every result whose
            goal and activation are still current. Exceptions it raises are reported to ``on_error``. It
            runs under the delivery lock, so it must be quick (publish) and must not call ``set_goal`` or
            ``set_active``.
        on_error: Called on the worker thread with ``(stage, job, exception)``; ``stage`` is ``"run"`` for the
            model, ``"deliver"`` for ``on_result``. The worker keeps running after either, and also when
            ``on_error`` itself raises (counted as ``error_handler_failed``).
        config: Rate limit and polling.
        counters: Where counts go; pass the node's so diagnostics see one set.
        clock: Monotonic seconds; tests pass a fake.
        start_policy: Optional ``() -> StartDecision`` asked before each start (the early trigger, see
            ``cosmos_ros.latency.decide_start``): ``NOW`` starts without waiting for the rate limit,
            ``RATE_LIMITED`` is the behaviour without a policy, ``WAIT`` defers the pending job: it is dropped
            (counted as ``frames_deferred``) and handed to ``on_deferred``, and the next submitted job is
            asked about again. Why drop rather than hold: a camera replaces a held job within a frame period
            anyway, and a simulator in lockstep waits for an answer about every frame it sends, so a job must
            never sit unanswered. An exception in the policy counts as ``start_policy_failed`` and falls
            back to ``RATE_LIMITED``.
        on_deferred: Called on the worker thread with each job ``WAIT`` dropped (e.g. to report it).
    """

    def __init__(
        self,
        run: Callable[[JobT, str], ResultT],
        on_result: Callable[[JobT, str, ResultT, WorkTiming], None],
        on_error: Callable[[str, JobT, BaseException], None],
        config: WorkerConfig | None = None,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.monotonic,
        start_policy: Callable[[], StartDecision] | None = None,
        on_deferred: Callable[[JobT], None] | None = None,
    ) -> None:
        self._start_policy = start_policy
        self._on_deferred = on_deferred
        self._run = run
        self._on_result = on_result
        self._on_error = on_error
        self.config = config or WorkerConfig()
        self.counters = counters or Counters()
        self.inference_window = RateWindow()
        self._clock = clock
        self._cond = threading.Condition()
        # Held while a result is checked and delivered, and while the goal/activation changes: once
        # set_goal("") returns, no result can be published any more (not even one that passed the epoch
        # check just before).
        self._deliver_lock = threading.Lock()
        self._state: _State[JobT] = _State()
        self._deferred: list[JobT] = []  # jobs WAIT dropped, handed to on_deferred outside the lock
        self._thread: threading.Thread | None = None

    # ---- called from callbacks (never block on inference) -------------------------------------------------
    def submit(self, job: JobT) -> None:
        """Offer a new frame set. Replaces (and counts as dropped) a pending one the worker has not taken."""
        now = self._clock()
        with self._cond:
            self.counters.add(FRAMES_SUBMITTED)
            if not self._state.active or not self._state.goal:
                self.counters.add(FRAMES_IGNORED)
                return
            if self._state.pending is not None:
                self.counters.add(FRAMES_DROPPED)
            self._state.pending = _Pending(job, now)
            self._cond.notify_all()

    def set_goal(self, goal: str) -> bool:
        """Replace the goal. An empty goal stops planning. Returns True if the goal changed.

        A changed goal makes the in-flight inference obsolete (its result is discarded). Withdrawing the goal
        also drops the pending frame set, so a later goal is planned on a frame captured after it was set
        rather than on one that waited while the robot was idle.
        """
        with self._deliver_lock, self._cond:
            if goal == self._state.goal:
                return False
            self._state.goal = goal
            self._state.epoch += 1
            if not goal:
                self._drop_pending_locked()
            self._cond.notify_all()
            return True

    def set_active(self, active: bool) -> None:
        """Start or stop accepting frames (lifecycle activate/deactivate). Deactivating discards in-flight
        results and the pending frame set."""
        with self._deliver_lock, self._cond:
            if active == self._state.active:
                return
            self._state.active = active
            self._state.epoch += 1
            if not active:
                self._drop_pending_locked()
            self._cond.notify_all()

    def _drop_pending_locked(self) -> None:
        if self._state.pending is not None:
            self.counters.add(FRAMES_DROPPED)
            self._state.pending = None

    @property
    def goal(self) -> str:
        with self._cond:
            return self._state.goal

    @property
    def busy(self) -> bool:
        """True while an inference runs."""
        with self._cond:
            return self._state.busy

    # ---- thread management --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._state.stop = False
            self._thread = threading.Thread(target=self._loop, name="cosmos_ros_inference", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Ask the thread to stop and wait up to ``timeout_s``. Returns True if it ended.

        An inference that is running cannot be interrupted; if it outlives the timeout the (daemon) thread
        finishes it later and its result is discarded, because stopping also deactivates.
        """
        with self._deliver_lock, self._cond:
            self._state.stop = True
            self._state.active = False
            self._state.epoch += 1
            self._drop_pending_locked()
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout=timeout_s)
        return not thread.is_alive()

    # ---- the worker thread ---------------------------------------------------------------------------------
    def _take_locked(self) -> tuple[_Pending[JobT], str, int] | None:
        """Wait (bounded) until a job may start; return it with the goal and epoch, or None to re-check."""
        st = self._state
        if st.stop:
            return None
        if st.pending is None or not st.goal or not st.active:
            self._cond.wait(timeout=self.config.poll_period_s)
            return None
        now = self._clock()
        decision = self._ask_start_policy()
        if decision is StartDecision.WAIT:
            self.counters.add(FRAMES_DEFERRED)
            self._deferred.append(st.pending.job)
            st.pending = None
            return None
        if decision is StartDecision.NOW and now < st.next_start_s:
            self.counters.add(EARLY_STARTS)
        elif now < st.next_start_s:
            # Rate limit: sleep until the next start is allowed; newer frames may replace `pending` meanwhile.
            self._cond.wait(timeout=min(st.next_start_s - now, self.config.poll_period_s))
            return None
        pending, st.pending = st.pending, None
        st.busy = True
        st.next_start_s = now + self.config.min_period_s
        return pending, st.goal, st.epoch

    def _hand_deferred(self, job: JobT) -> None:
        if self._on_deferred is None:
            return
        try:
            self._on_deferred(job)
        except Exception as exc:  # a reporting failure must not end the worker
            self._report("deferred", job, exc)

    def _ask_start_policy(self) -> StartDecision:
        if self._start_policy is None:
            return StartDecision.RATE_LIMITED
        try:
            return self._start_policy()
        except Exception:  # a policy bug must not stop planning: fall back to the plain rate limit
            self.counters.add(START_POLICY_FAILED)
            return StartDecision.RATE_LIMITED

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._state.stop:
                    return
                taken = self._take_locked()
                deferred, self._deferred = self._deferred, []
            for job in deferred:
                self._hand_deferred(job)
            if taken is None:
                continue
            pending, goal, epoch = taken
            try:
                self._run_one(pending, goal, epoch)
            finally:
                with self._cond:
                    self._state.busy = False
                    self._cond.notify_all()

    def _run_one(self, pending: _Pending[JobT], goal: str, epoch: int) -> None:
        started = self._clock()
        self.counters.add(INFERENCES)
        try:
            result = self._run(pending.job, goal)
        except Exception as exc:  # a model failure must never end the worker
            self._report("run", pending.job, exc)
            return
        finished = self._clock()
        timing = WorkTiming(pending.submitted_s, started, finished)
        self.inference_window.add(finished, timing.inference_time_s)
        with self._deliver_lock:
            with self._cond:
                current = epoch == self._state.epoch
            if not current:
                self.counters.add(RESULTS_DISCARDED)
                return
            try:
                self._on_result(pending.job, goal, result, timing)
            except Exception as exc:
                self._report("deliver", pending.job, exc)
                return
        self.counters.add(PLANS_DELIVERED)

    def _report(self, stage: str, job: JobT, exc: BaseException) -> None:
        try:
            self._on_error(stage, job, exc)
        except Exception:  # the error handler itself failed (e.g. logging): count it, keep the thread alive
            self.counters.add(ERROR_HANDLER_FAILED)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no job is pending and none runs (tests, shutdown). Returns False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._state.busy or (
                self._state.pending is not None and self._state.active and bool(self._state.goal)
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=min(left, 0.05))
            return True


def format_counts(counts: Mapping[str, int]) -> str:
    """One-line ``name=value`` rendering, sorted, for log lines."""
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
