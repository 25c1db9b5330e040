"""Prefix conditioning (real-time chunking without gradients): which steps of the next chunk to pin, how hard.

The next chunk is computed while the current one executes. Its first ``d`` steps are due before it can
arrive, so the robot will execute the *current* chunk's values there whatever the model says; the model
should therefore continue from them instead of starting a new motion that the chunk switch then has to
blend away. Following Black, Galliker & Levine 2025 ("Real-Time Execution of Action Chunking Flow Policies")
and lerobot's ``policies/rtc``, the next chunk's rows get weights (:func:`prefix_weights`): 1 for the first
``d`` steps, a decaying soft mask up to ``execution_horizon`` and 0 after it. ``d`` is sized like lerobot's
``rollout/inference/rtc.py``: ``ceil(expected delay / step period)``.

This module only builds the target and the weights (:func:`build_prefix`), in the model's normalised action
space, on the next chunk's own time grid (the current chunk is interpolated there). How a backend applies them
inside its sampler is the backend's business (``cosmos_ros.runtime.fast``: a velocity correction per step
that, with weight 1, keeps the rows exactly on the previous chunk re-noised to the sampler's noise level).
Pure NumPy, no ROS, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cosmos_ros.runtime.backend import ActionPrefix

# "hard": 1 on the first d steps, 0 after (lerobot's ZEROS); "linear" and "exp": RTC's soft masks.
PREFIX_SCHEDULES = ("hard", "linear", "exp")


@dataclass(frozen=True)
class PrefixConfig:
    """Prefix-conditioning settings (names follow lerobot's ``RTCConfig`` where the meaning matches).

    Attributes:
        execution_horizon: Step index (>= 1) at which the soft mask reaches 0, as in lerobot (``H - s`` in the
            paper's notation). Values above the chunk size are clamped to it; values below ``d`` are raised to
            ``d`` (the frozen steps always keep weight 1).
        prefix_attention_schedule: Soft mask between ``d`` and ``execution_horizon``: one of
            ``PREFIX_SCHEDULES``.
        prefix_strength: Scale (0, 1] of all weights: this package's counterpart of lerobot's
            ``max_guidance_weight``. There is no vector-Jacobian product to clip here; a weight of 1 already
            reproduces the prefix exactly, so the useful range is [0, 1].
    """

    execution_horizon: int = 8
    prefix_attention_schedule: str = "exp"
    prefix_strength: float = 1.0

    def __post_init__(self) -> None:
        if self.execution_horizon < 1:
            raise ValueError(f"execution_horizon must be >= 1, got {self.execution_horizon}")
        if self.prefix_attention_schedule not in PREFIX_SCHEDULES:
            raise ValueError(
                f"prefix_attention_schedule must be one of {PREFIX_SCHEDULES}, "
                f"got {self.prefix_attention_schedule!r}"
            )
        if not (math.isfinite(self.prefix_strength) and 0.0 < self.prefix_strength <= 1.0):
            raise ValueError(f"prefix_strength must be in (0, 1], got {self.prefix_strength}")


def prefix_weights(d: int, end: int, total: int, schedule: str) -> np.ndarray:
    """RTC's soft mask: ``[total]`` weights, 1 for ``i < d``, decaying for ``d <= i < end``, 0 from ``end``.

    ``linear``: ``c_i = (end - i) / (end - d + 1)``; ``exp``: ``c_i * (e^{c_i} - 1) / (e - 1)`` (the paper's
    eq. 5 with ``H - s = end``); ``hard``: 0 on the soft span.

    Raises:
        ValueError: Not ``0 <= d <= end <= total``, or an unknown schedule.
    """
    if not 0 <= d <= end <= total:
        raise ValueError(f"need 0 <= d <= end <= total, got d={d}, end={end}, total={total}")
    if schedule not in PREFIX_SCHEDULES:
        raise ValueError(f"schedule must be one of {PREFIX_SCHEDULES}, got {schedule!r}")
    w = np.zeros(total, dtype=np.float64)
    w[:d] = 1.0
    if schedule != "hard" and end > d:
        i = np.arange(d, end, dtype=np.float64)
        c = (end - i) / (end - d + 1)
        w[d:end] = c if schedule == "linear" else c * np.expm1(c) / math.expm1(1.0)
    return w


@dataclass(frozen=True)
class ExecutingChunk:
    """The chunk the robot is executing, as the model produced it.

    Attributes:
        t0_s: Time of its step 0 (node clock).
        step_period_s: Time between its steps (s).
        raw_actions: ``[T, W]`` model-normalised actions.
    """

    t0_s: float
    step_period_s: float
    raw_actions: np.ndarray

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_period_s) and self.step_period_s > 0):
            raise ValueError(f"step_period_s must be a finite number > 0, got {self.step_period_s}")
        if self.raw_actions.ndim != 2 or self.raw_actions.shape[0] < 1:
            raise ValueError(f"raw_actions must be [T >= 1, W], got shape {self.raw_actions.shape}")

    def at(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Linearly interpolated rows at ``times_s`` and a mask of the times the chunk covers."""
        raw = np.asarray(self.raw_actions, dtype=np.float64)
        u = (np.asarray(times_s, dtype=np.float64) - self.t0_s) / self.step_period_s
        last = raw.shape[0] - 1
        covered = (u >= -1e-9) & (u <= last + 1e-9)
        u = np.clip(u, 0.0, float(last))
        k = np.minimum(np.floor(u).astype(int), max(last - 1, 0))
        frac = (u - k)[:, None] if last > 0 else np.zeros((len(u), 1))
        nxt = np.minimum(k + 1, last)
        return raw[k] * (1.0 - frac) + raw[nxt] * frac, covered


def frozen_steps(arrival_s: float, t0_s: float, step_period_s: float, total: int) -> int:
    """``d``: steps of the next chunk due before it arrives: ``ceil((arrival - t0) / period)`` clamped."""
    d = math.ceil((arrival_s - t0_s) / step_period_s - 1e-9)
    return int(min(max(d, 0), total))


def build_prefix(
    current: ExecutingChunk,
    t0_s: float,
    step_period_s: float,
    total: int,
    arrival_s: float,
    config: PrefixConfig,
) -> ActionPrefix | None:
    """The prefix for the next chunk, or ``None`` when no row of it overlaps the executing chunk.

    Args:
        current: The executing chunk.
        t0_s: Time of the next chunk's step 0 (its frame's capture time + the profile's action delay).
        step_period_s: The next chunk's step period.
        total: The next chunk's number of steps.
        arrival_s: When the next chunk is expected to reach the safety node (inference start + expected
            latency, node clock).
        config: Schedule and strength.
    """
    d = frozen_steps(arrival_s, t0_s, step_period_s, total)
    end = min(max(config.execution_horizon, d), total)
    weights = prefix_weights(d, end, total, config.prefix_attention_schedule) * config.prefix_strength
    target, covered = current.at(t0_s + step_period_s * np.arange(total))
    weights = np.where(covered, weights, 0.0)  # no target where the current chunk has no step
    if not np.any(weights > 0):
        return None
    return ActionPrefix(
        actions=np.where(covered[:, None], target, 0.0).astype(np.float32),
        weights=weights.astype(np.float32),
        frozen_steps=d,
    )


__all__ = [
    "PREFIX_SCHEDULES",
    "ExecutingChunk",
    "PrefixConfig",
    "build_prefix",
    "frozen_steps",
    "prefix_weights",
]
