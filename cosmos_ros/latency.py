"""Latency accounting and the early trigger: when the planner should start its next inference, without ROS.

Why a separate module: a plan that arrives after its chunk's steps have passed moves the robot in bursts (the
safety node skips the past steps, cross-fades, and brakes when nothing covers now). Whether that happens is
decided by three numbers the planner can know in advance: how long a plan takes to arrive (measured here,
on the node clock), how long the executing chunk still lasts, and the chunk's horizon. Keeping the maths
here, with the clock passed in, lets tests drive it with fake times (``test/test_latency.py``).

Two rules, both pure functions of ``now``:

- :func:`latency_warnings`: the expected latency against a fraction of the chunk horizon and the safety
  node's staleness limit, with the parameters to change named in the text.
- :func:`decide_start`: whether the next inference may start now. ``chunk_size_threshold`` has lerobot async
  inference's meaning (``lerobot/async_inference``: a new observation is sent once
  ``steps left / chunk_size <= chunk_size_threshold``; 1.0 = whenever the rate limit allows, which is this
  package's behaviour without an early trigger). The *early trigger* adds: start at once, without waiting
  for the plan-rate limit, as soon as the executing chunk has no more steps left than the expected latency
  covers (+ a margin), so the next plan arrives before the current one runs out.
"""

from __future__ import annotations

import enum
import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """A snapshot of a :class:`LatencyEstimator` (seconds; 0.0 and ``count == 0`` before any sample).

    Attributes:
        count: Samples seen since construction.
        last_s: The newest sample.
        mean_s: Exponentially weighted running mean.
        p95_s: 95th percentile over the window (linear interpolation, numpy's default).
        max_s: Largest sample in the window.
    """

    count: int
    last_s: float
    mean_s: float
    p95_s: float
    max_s: float


class LatencyEstimator:
    """Running estimate (EWMA) and p95 of a latency over the last ``window`` samples (thread-safe).

    Why p95 over a window as the *expected* latency: plans must arrive before their chunk runs out nearly
    every time, so the planner sizes its trigger and its conditioned prefix on a high percentile, not on the
    mean. A window (not the whole history) lets the estimate follow a change of load: it rises after two
    slow samples (one sample is 1/20 of the window, interpolated) and falls once the slow samples have left
    the window, i.e. it is quick to become cautious and slow to become optimistic.

    Args:
        window: Samples kept for the percentile (>= 2).
        ewma_alpha: Weight of a new sample in the running mean, in (0, 1].
    """

    def __init__(self, window: int = 20, ewma_alpha: float = 0.3) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        if not (math.isfinite(ewma_alpha) and 0.0 < ewma_alpha <= 1.0):
            raise ValueError(f"ewma_alpha must be in (0, 1], got {ewma_alpha}")
        self._alpha = ewma_alpha
        self._lock = threading.Lock()
        self._samples: deque[float] = deque(maxlen=window)
        self._mean = 0.0
        self._count = 0

    def add(self, latency_s: float) -> None:
        """Record one sample.

        Raises:
            ValueError: ``latency_s`` is not a finite number >= 0 (a clock that went backwards, say).
        """
        if not (math.isfinite(latency_s) and latency_s >= 0.0):
            raise ValueError(f"latency_s must be a finite number >= 0, got {latency_s}")
        with self._lock:
            self._mean = (
                latency_s if self._count == 0 else self._mean + self._alpha * (latency_s - self._mean)
            )
            self._samples.append(latency_s)
            self._count += 1

    def expected_s(self) -> float | None:
        """The latency the planner plans for (the window's p95), or ``None`` before the first sample."""
        stats = self.stats()
        return stats.p95_s if stats.count else None

    def stats(self) -> LatencyStats:
        with self._lock:
            if not self._samples:
                return LatencyStats(0, 0.0, 0.0, 0.0, 0.0)
            arr = np.fromiter(self._samples, dtype=np.float64)
            return LatencyStats(
                count=self._count,
                last_s=float(arr[-1]),
                mean_s=self._mean,
                p95_s=float(np.percentile(arr, 95)),
                max_s=float(arr.max()),
            )


# ---------------------------------------------------------------------------------------------- budget check
@dataclass(frozen=True)
class ChunkTiming:
    """When an executing chunk's steps are due: step ``k`` at ``t0_s + k * step_period_s``.

    Attributes:
        t0_s: Time of step 0 (node clock, s).
        step_period_s: Time between steps (s), > 0.
        num_steps: Steps in the chunk, >= 1.
    """

    t0_s: float
    step_period_s: float
    num_steps: int

    def __post_init__(self) -> None:
        if not math.isfinite(self.t0_s):
            raise ValueError(f"t0_s must be finite, got {self.t0_s}")
        if not (math.isfinite(self.step_period_s) and self.step_period_s > 0):
            raise ValueError(f"step_period_s must be a finite number > 0, got {self.step_period_s}")
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")

    @property
    def horizon_s(self) -> float:
        """How long the chunk lasts when executed from its first step: ``num_steps * step_period_s``."""
        return self.num_steps * self.step_period_s

    def steps_left(self, now_s: float) -> int:
        """Steps due at or after ``now_s`` (the ones the safety node would still execute)."""
        if now_s <= self.t0_s:
            return self.num_steps
        passed = math.ceil((now_s - self.t0_s) / self.step_period_s - 1e-9)
        return max(0, self.num_steps - passed)


def latency_warnings(
    expected_s: float,
    chunk_size: int,
    step_period_s: float,
    warn_fraction: float,
    staleness_limit_s: float | None = None,
) -> list[str]:
    """Why the expected latency is too long for the configured chunk, with what to change (empty if fine).

    Args:
        expected_s: Expected time from frame capture to a plan's arrival (s).
        chunk_size: Steps per plan.
        step_period_s: Time between steps (1 / fps).
        warn_fraction: Largest accepted ``expected_s / horizon`` (0 < f <= 1). Above 0.5 a planner that runs
            back to back can no longer keep the robot covered: each plan is half executed before it arrives
            and the next one arrives two latencies after its own frame.
        staleness_limit_s: The safety node's ``staleness_limit_s``, if known; a plan older than it is
            rejected outright.
    """
    horizon = chunk_size * step_period_s
    remedies = (
        "fewer num_inference_steps, a longer chunk (chunk_size, or a lower fps), FP8 weights where the "
        "backend supports them, or a faster backend (backend: fast or tensorrt, or a faster device)"
    )
    out = []
    if expected_s > warn_fraction * horizon:
        out.append(
            f"expected plan latency {expected_s:.3f} s is {100 * expected_s / horizon:.0f} % of the chunk "
            f"horizon {horizon:.3f} s (chunk_size={chunk_size} x {step_period_s:.4f} s), above "
            f"latency_warn_fraction={warn_fraction:g}: plans arrive with most of their steps in the past and "
            f"the robot moves in bursts; use {remedies}"
        )
    if staleness_limit_s is not None and expected_s > staleness_limit_s:
        out.append(
            f"expected plan latency {expected_s:.3f} s exceeds the safety node's staleness limit "
            f"{staleness_limit_s:g} s (safety_staleness_limit_s): the safety node will reject plans as "
            f"stale; "
            f"use {remedies}, or raise staleness_limit_s in the limits file if that is safe for the robot"
        )
    return out


# ------------------------------------------------------------------------------------------- early trigger
class StartDecision(enum.Enum):
    """What the worker may do with a pending frame set now."""

    NOW = "now"  # start at once, even before the plan-rate limit allows (the early trigger fired)
    RATE_LIMITED = "rate_limited"  # start when the plan-rate limit allows (the behaviour without a trigger)
    WAIT = "wait"  # the executing chunk has enough steps left; do not start yet


@dataclass(frozen=True)
class TriggerConfig:
    """When the next inference starts (see the module docstring).

    Attributes:
        early_trigger: Start the next inference, ignoring the plan-rate limit, once the executing chunk has
            no more than ``ceil(expected latency / step period) + early_trigger_margin_steps`` steps left.
        chunk_size_threshold: lerobot async inference's threshold in [0, 1]: a new inference may start (under
            the rate limit) only when ``steps left / chunk size <= chunk_size_threshold``. 1.0 = always.
        early_trigger_margin_steps: Steps added to the expected latency (>= 0): covers the worker's polling
            and the transport to the safety node.
    """

    early_trigger: bool = True
    chunk_size_threshold: float = 1.0
    early_trigger_margin_steps: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.chunk_size_threshold) and 0.0 <= self.chunk_size_threshold <= 1.0):
            raise ValueError(f"chunk_size_threshold must be in [0, 1], got {self.chunk_size_threshold}")
        if self.early_trigger_margin_steps < 0:
            raise ValueError(
                f"early_trigger_margin_steps must be >= 0, got {self.early_trigger_margin_steps}"
            )


def trigger_steps(expected_latency_s: float, step_period_s: float, margin_steps: int) -> int:
    """Steps left at which the early trigger fires: ``ceil(latency / period) + margin`` (lerobot's d)."""
    return math.ceil(expected_latency_s / step_period_s - 1e-9) + margin_steps


def decide_start(
    now_s: float, chunk: ChunkTiming | None, expected_latency_s: float | None, config: TriggerConfig
) -> StartDecision:
    """May the next inference start at ``now_s`` while ``chunk`` executes?

    Args:
        now_s: Node clock (the clock of ``chunk``'s times).
        chunk: The newest delivered plan's timing, or ``None`` before the first plan.
        expected_latency_s: :meth:`LatencyEstimator.expected_s`; ``None`` before any measurement (the early
            trigger then stays off: nothing is known to size it).
        config: Trigger settings.
    """
    if chunk is None:
        return StartDecision.RATE_LIMITED
    left = chunk.steps_left(now_s)
    if left == 0:
        return StartDecision.RATE_LIMITED  # nothing executes any more: plan as soon as allowed
    if (
        config.early_trigger
        and expected_latency_s is not None
        and left <= trigger_steps(expected_latency_s, chunk.step_period_s, config.early_trigger_margin_steps)
    ):
        return StartDecision.NOW
    if left / chunk.num_steps <= config.chunk_size_threshold:
        return StartDecision.RATE_LIMITED
    return StartDecision.WAIT


__all__ = [
    "ChunkTiming",
    "LatencyEstimator",
    "LatencyStats",
    "StartDecision",
    "TriggerConfig",
    "decide_start",
    "latency_warnings",
    "trigger_steps",
]
