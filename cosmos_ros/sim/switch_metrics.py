"""How smooth the hand-over from one chunk to the next is, measured at the chunk switches of a closed loop.

Two views (both used by ``tools/eval_rtc``):

* **plan jump** (before the safety node): at the time the safety node took a new plan, the largest
  per-axis difference between the new plan and the plan it replaced, both interpolated at that time. This is
  what real-time chunking is meant to shrink: consecutive chunks that disagree where they overlap.
* **switch jerk / velocity step** (after the safety node): the largest third difference and the largest
  one-tick velocity change of the setpoints the controllers received in a window after each switch. The
  safety node's jerk limit bounds these, so they show the limiter at work rather than the plans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlanSample:
    """One published plan: absolute step times (s) and values ``[T, D]`` (the axes the safety node limits)."""

    plan_id: int
    goal: str
    times_s: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[0] != self.times_s.shape[0] or self.values.shape[0] < 1:
            raise ValueError(f"plan {self.plan_id}: times {self.times_s.shape} vs values {self.values.shape}")

    def value_at(self, t: float) -> np.ndarray:
        """Linear interpolation between steps, held at the ends (as the safety node holds the last step)."""
        return np.array([np.interp(t, self.times_s, col) for col in self.values.T])


def plan_jumps(
    plans: Sequence[PlanSample], switch_times: Mapping[int, float], max_gap_s: float = 5.0
) -> list[float]:
    """Per switch: max |new(t) - old(t)| over axes at the new plan's switch time ``t``.

    ``plans`` in publication order; a plan without a switch time (rejected, or its status was lost) is not
    followed and does not replace the current one. A goal change or a gap longer than ``max_gap_s`` starts a
    new run (an episode boundary), where there is nothing to hand over from.
    """
    jumps: list[float] = []
    current: PlanSample | None = None
    current_t = 0.0
    for plan in plans:
        t = switch_times.get(plan.plan_id)
        if t is None:
            continue
        if current is not None and plan.goal == current.goal and t - current_t <= max_gap_s:
            jumps.append(float(np.max(np.abs(plan.value_at(t) - current.value_at(t)))))
        current, current_t = plan, t
    return jumps


def setpoint_switch_stats(
    setpoints: np.ndarray, dt: float, switch_ticks: Sequence[int], window: int = 8
) -> tuple[float, float]:
    """(max |jerk|, max |velocity step|) of ``setpoints [N, D]`` over ticks ``k .. k + window`` per switch.

    Jerk is the third finite difference / dt^3, the velocity step the second difference / dt (rad/s per
    tick). Switches too close to the ends to have the differences are skipped.
    """
    sp = np.asarray(setpoints, dtype=np.float64)
    jerk = np.diff(sp, n=3, axis=0) / dt**3 if len(sp) >= 4 else np.zeros((0, sp.shape[1]))
    dv = np.diff(sp, n=2, axis=0) / dt if len(sp) >= 3 else np.zeros((0, sp.shape[1]))
    max_jerk = max_dv = 0.0
    for k in switch_ticks:
        lo = max(int(k) - 2, 0)
        j = jerk[lo : int(k) + window]
        v = dv[lo : int(k) + window]
        if j.size:
            max_jerk = max(max_jerk, float(np.max(np.abs(j))))
        if v.size:
            max_dv = max(max_dv, float(np.max(np.abs(v))))
    return max_jerk, max_dv


__all__ = ["PlanSample", "plan_jumps", "setpoint_switch_stats"]
