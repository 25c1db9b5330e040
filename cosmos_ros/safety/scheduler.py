"""Chunk scheduling: which target a plan (or two overlapping plans) asks for at a control tick.

Step ``k`` of a plan is the target for ``t0 + k * step_period``; between steps the target is linearly
interpolated at the tick time (quaternion columns: normalised linear interpolation, nlerp, which for the
small angle between consecutive steps is indistinguishable from slerp and cheaper). A plan covers
``[t0, t0 + (T-1) * step_period]``; outside that it asks for nothing and the supervisor's watchdog decides.

Switching between chunks: ``crossfade`` (default) or ``replace``.

* ``crossfade``: when a new plan arrives while the previous one still covers now, the target fades
  linearly from the old plan's target to the new plan's over ``blend_time_s``, starting when the new plan
  first covers the tick (``max(arrival, t0)``). Why this rather than ACT-style temporal ensembling:
  ensembling averages *all* overlapping chunks with exponential weights, which needs every chunk to predict
  the same time grid and keeps stale chunks influential for their whole length; a cross-fade is a single,
  bounded window after which the newest plan (conditioned on the newest image) alone is followed, and its
  effect on the target is easy to state: a convex combination of two in-bounds targets, so it is in bounds
  too. The jerk-limited limiter downstream removes any residual kink.
* ``replace``: the new plan takes over as soon as it covers the tick (a cross-fade of length 0). The
  limiter still keeps the setpoint stream within the limits; the jump moves into the limiter's catch-up.

Newest plan wins for good (issue 9, defect 3): an older plan is followed only until the newest plan's first
step time (the hand-over); once the newest plan has started, no older plan is ever sampled again, and after
the newest plan's last step nothing covers the time, so the supervisor's watchdog takes over. (Before this,
a newer plan shorter than the cross-fade window handed the target back to the older plan when it ended.)

A blend that starts while another is still running nests (old = the running blend); nesting deeper than
``MAX_NESTING`` collapses the oldest blend to its newer plan, so work per tick stays bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BLEND_MODES = ("crossfade", "replace")
MAX_NESTING = 3


@dataclass(frozen=True)
class ScheduledPlan:
    """A checked, bounded plan ready to stream.

    Attributes:
        plan_id: Id of the source plan.
        t0_s: Time of step 0 (s).
        step_period_s: Time between steps (s), > 0.
        values: ``[T, D]`` bounded targets (quaternion rows unit-norm and sign-aligned step to step).
        quaternion_columns: Column slice of the quaternion (pose spaces) or None.
    """

    plan_id: int
    t0_s: float
    step_period_s: float
    values: np.ndarray
    quaternion_columns: slice | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_period_s) and self.step_period_s > 0):
            raise ValueError(f"step_period_s must be finite and > 0, got {self.step_period_s}")
        if not math.isfinite(self.t0_s):
            raise ValueError(f"t0_s must be finite, got {self.t0_s}")
        if self.values.ndim != 2 or self.values.shape[0] < 1:
            raise ValueError(f"values must be [T >= 1, D], got shape {self.values.shape}")
        if not np.all(np.isfinite(self.values)):
            raise ValueError("values must be finite (reject the plan before scheduling it)")

    @property
    def end_s(self) -> float:
        return self.t0_s + (self.values.shape[0] - 1) * self.step_period_s

    def covers(self, t: float) -> bool:
        return self.t0_s <= t <= self.end_s

    def steps_before(self, t: float) -> int:
        """Number of steps whose time is strictly before ``t`` (skipped when the plan arrives at ``t``)."""
        if t <= self.t0_s:
            return 0
        k = math.ceil((t - self.t0_s) / self.step_period_s)
        return int(min(k, self.values.shape[0]))

    def sample(self, t: float, out_p: np.ndarray, out_v: np.ndarray) -> None:
        """Target position and velocity at ``t`` (which must be covered) into ``out_p``/``out_v``."""
        u = (t - self.t0_s) / self.step_period_s
        last = self.values.shape[0] - 1
        k = min(int(u), last - 1) if last > 0 else 0
        if last == 0:
            out_p[:] = self.values[0]
            out_v[:] = 0.0
            return
        w = min(max(u - k, 0.0), 1.0)
        a, b = self.values[k], self.values[k + 1]
        np.subtract(b, a, out=out_v)
        np.multiply(out_v, w, out=out_p)
        out_p += a
        out_v /= self.step_period_s
        if self.quaternion_columns is not None:
            q = out_p[self.quaternion_columns]
            q /= np.linalg.norm(q)


@dataclass
class _Blend:
    old: ScheduledPlan | _Blend
    new: ScheduledPlan
    start_s: float
    duration_s: float
    _p: np.ndarray = field(init=False, repr=False)
    _v: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        d = self.new.values.shape[1]
        self._p = np.empty(d)
        self._v = np.empty(d)

    def depth(self) -> int:
        return 1 + (self.old.depth() if isinstance(self.old, _Blend) else 0)


def _covers(src: ScheduledPlan | _Blend, t: float) -> bool:
    if isinstance(src, ScheduledPlan):
        return src.covers(t)
    # The older side counts only before the newer plan starts (see "Newest plan wins" above).
    return src.new.covers(t) or (t < src.new.t0_s and _covers(src.old, t))


def _sample(src: ScheduledPlan | _Blend, t: float, out_p: np.ndarray, out_v: np.ndarray) -> int:
    """Sample a covered source; returns the id of the plan that dominates the target."""
    if isinstance(src, ScheduledPlan):
        src.sample(t, out_p, out_v)
        return src.plan_id
    new_covers = src.new.covers(t)
    old_covers = _covers(src.old, t)
    if not new_covers:  # only before the newer plan starts (_covers), never after it ended
        return _sample(src.old, t, out_p, out_v)
    if not old_covers or src.duration_s <= 0 or t >= src.start_s + src.duration_s:
        src.new.sample(t, out_p, out_v)
        return src.new.plan_id
    w = (t - src.start_s) / src.duration_s
    w = min(max(w, 0.0), 1.0)
    _sample(src.old, t, src._p, src._v)
    src.new.sample(t, out_p, out_v)
    qc = src.new.quaternion_columns
    if qc is not None and float(np.dot(out_p[qc], src._p[qc])) < 0.0:
        out_p[qc] *= -1.0
        out_v[qc] *= -1.0
    # d/dt[(1-w) old + w new] = (1-w) v_old + w v_new + (new - old) / duration
    out_v *= w
    out_v += (1.0 - w) * src._v + (out_p - src._p) / src.duration_s
    out_p *= w
    out_p += (1.0 - w) * src._p
    if qc is not None:
        q = out_p[qc]
        q /= np.linalg.norm(q)
    return src.new.plan_id if w >= 0.5 else _dominant(src.old)


def _dominant(src: ScheduledPlan | _Blend) -> int:
    return src.plan_id if isinstance(src, ScheduledPlan) else src.new.plan_id


def _collapse(src: ScheduledPlan | _Blend, t: float) -> ScheduledPlan | _Blend | None:
    """Drop what can no longer contribute at or after ``t``."""
    if isinstance(src, ScheduledPlan):
        return src if t <= src.end_s else None
    if t > src.new.end_s:
        return None  # the newest plan has ended: nothing older may take over again
    if t >= src.start_s + src.duration_s and src.new.covers(t):
        return src.new
    old = _collapse(src.old, t)
    if old is None:
        return src.new
    src.old = old
    return src


def _trim(src: ScheduledPlan | _Blend, depth: int) -> ScheduledPlan | _Blend:
    if isinstance(src, ScheduledPlan):
        return src
    if depth <= 1:
        # Innermost allowed level: replace the older side by its newest plan.
        if isinstance(src.old, _Blend):
            src.old = src.old.new
        return src
    src.old = _trim(src.old, depth - 1)
    return src


@dataclass(frozen=True)
class SchedulerConfig:
    """How consecutive plans are joined.

    Attributes:
        blend_mode: ``crossfade`` or ``replace`` (see module docstring for why crossfade is the default).
        blend_time_s: Length of the cross-fade window in seconds (>= 0; 0 behaves like replace).
    """

    blend_mode: str = "crossfade"
    blend_time_s: float = 0.2

    def __post_init__(self) -> None:
        if self.blend_mode not in BLEND_MODES:
            raise ValueError(f"blend_mode must be one of {BLEND_MODES}, got {self.blend_mode!r}")
        if not (math.isfinite(self.blend_time_s) and self.blend_time_s >= 0):
            raise ValueError(f"blend_time_s must be finite and >= 0, got {self.blend_time_s}")


class ChunkScheduler:
    """Turns pushed plans into a target (position, velocity) at any tick time.

    The clock is passed in: ``push(plan, now)``, ``target(now, out_p, out_v)``.
    """

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self._source: ScheduledPlan | _Blend | None = None

    def clear(self) -> None:
        self._source = None

    def push(self, plan: ScheduledPlan, now_s: float) -> int:
        """Schedule ``plan``; returns how many of its steps are already in the past (skipped).

        Raises:
            ValueError: ``plan`` has no step at or after ``now_s`` (nothing to schedule).
        """
        skipped = plan.steps_before(now_s)
        if skipped >= plan.values.shape[0]:
            raise ValueError(f"plan {plan.plan_id}: all {skipped} steps are before now ({now_s})")
        current = _collapse(self._source, now_s) if self._source is not None else None
        duration = self.config.blend_time_s if self.config.blend_mode == "crossfade" else 0.0
        if current is None:
            self._source = plan
        else:
            start = max(now_s, plan.t0_s)
            blend = _Blend(current, plan, start, duration)
            self._source = _trim(blend, MAX_NESTING) if blend.depth() > MAX_NESTING else blend
        return skipped

    def target(self, now_s: float, out_p: np.ndarray, out_v: np.ndarray) -> int | None:
        """Write the target at ``now_s`` into ``out_p``/``out_v``.

        Returns:
            Id of the plan that dominates the target, or None if no plan covers ``now_s`` (outputs
            untouched).
        """
        if self._source is None:
            return None
        collapsed = _collapse(self._source, now_s)
        self._source = collapsed
        if collapsed is None or not _covers(collapsed, now_s):
            return None
        return _sample(collapsed, now_s, out_p, out_v)

    def covers(self, now_s: float) -> bool:
        return self._source is not None and _covers(self._source, now_s)
