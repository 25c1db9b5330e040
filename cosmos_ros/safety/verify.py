"""An independent checker of a streamed setpoint sequence: does it violate the limits or not?

Why independent: the limiter's own bookkeeping (its internal velocity and acceleration) cannot be the judge
of the limiter. This module knows nothing of ``rate_limiter``; it only takes the published positions and the
control period, differentiates them (finite differences, the way a controller or a plot would see them) and
compares with the limits, within a float tolerance that scales with the position magnitude and ``dt``.
Tests use it on generated streams; node tests can use it on recorded controller topics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Violation:
    """One limit violated at one sample.

    Attributes:
        kind: ``position``, ``velocity``, ``acceleration`` or ``jerk``.
        axis: Column index.
        index: Sample index in the checked sequence (of the later sample of the difference).
        value: The offending value (position, or finite-difference rate).
        limit: The limit it exceeds.
    """

    kind: str
    axis: int
    index: int
    value: float
    limit: float


def find_violations(
    positions: np.ndarray,
    dt: float,
    *,
    min_position: np.ndarray | None = None,
    max_position: np.ndarray | None = None,
    max_velocity: np.ndarray | None = None,
    max_acceleration: np.ndarray | None = None,
    max_jerk: np.ndarray | None = None,
    from_rest: bool = True,
    rtol: float = 1e-9,
    columns: np.ndarray | None = None,
) -> list[Violation]:
    """Finite-difference check of a setpoint sequence.

    Args:
        positions: ``[N, D]`` setpoints, one per control period.
        dt: Control period (s), > 0.
        min_position, max_position, max_velocity, max_acceleration, max_jerk: ``[D]`` limits, or None to
            skip that check; ``np.inf`` entries are not checked.
        from_rest: The sequence starts at rest (velocity and acceleration 0 before the first sample), as
            after a soft start.
        rtol: Relative tolerance on rate limits.
        columns: ``[D]`` bool mask of columns to check (default: all).

    Returns:
        All violations found (empty list = the sequence respects the limits).

    Raises:
        ValueError: non-finite positions or invalid ``dt`` (a stream with NaN is not "within limits").
    """
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and > 0, got {dt}")
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"positions must be [N, D], got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("positions contain NaN/Inf")
    if from_rest and p.shape[0]:
        p = np.concatenate([p[:1], p[:1], p[:1], p], axis=0)
        offset = 3
    else:
        offset = 0
    mask = np.ones(p.shape[1], dtype=bool) if columns is None else np.asarray(columns, dtype=bool)
    scale = float(np.max(np.abs(p))) + 1.0 if p.size else 1.0
    out: list[Violation] = []

    def report(kind: str, values: np.ndarray, limit: np.ndarray | None, order: int, first_index: int) -> None:
        if limit is None or values.size == 0:
            return
        lim = np.broadcast_to(np.asarray(limit, dtype=np.float64), (p.shape[1],))
        # Rounding of positions (~eps * scale) is amplified by 1/dt per difference order.
        atol = 16.0 * (2.0**order) * _EPS * scale / dt**order
        bad = (np.abs(values) > lim * (1.0 + rtol) + atol) & mask & np.isfinite(lim)
        for i, j in zip(*np.nonzero(bad), strict=True):
            out.append(
                Violation(kind, int(j), int(i) + first_index - offset, float(values[i, j]), float(lim[j]))
            )

    if min_position is not None or max_position is not None:
        lo = -np.inf if min_position is None else np.asarray(min_position, dtype=np.float64)
        hi = np.inf if max_position is None else np.asarray(max_position, dtype=np.float64)
        body = p[offset:]
        below = (body < lo) & mask
        above = (body > hi) & mask
        for i, j in zip(*np.nonzero(below | above), strict=True):
            bound = np.broadcast_to(lo if below[i, j] else hi, (p.shape[1],))[j]
            out.append(Violation("position", int(j), int(i), float(body[i, j]), float(bound)))
    v = np.diff(p, axis=0) / dt
    a = np.diff(v, axis=0) / dt
    j = np.diff(a, axis=0) / dt
    report("velocity", v, max_velocity, 1, 1)
    report("acceleration", a, max_acceleration, 2, 2)
    report("jerk", j, max_jerk, 3, 3)
    return out
