"""Per-joint PID position controllers and the setpoint gate in front of them (pure numpy, no simulator).

The simulated Panda is driven the way a torque-controlled robot is: each joint gets a torque from a PID on
its position error, clipped to the joint's effort limit (from the URDF), so a setpoint is *tracked* through
the dynamics, never teleported. In front of the PIDs sits :class:`SetpointGate`, the sim's own defence in
depth: a setpoint for an unknown joint, a NaN/Inf, or a value outside the model's joint range is refused with
a counted reason (the safety node should already have stopped it). A joint that receives no setpoint for
``cmd_timeout_s`` holds the position measured at that moment, like ros2_control's ``cmd_timeout``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cosmos_ros.sim.config import PidGains

# Reasons a setpoint is refused; the counters on /diagnostics use these names.
REFUSAL_REASONS = ("unknown_joint", "non_finite", "out_of_range", "malformed")


@dataclass(frozen=True)
class Refusal:
    """A refused command: the reason code and a human-readable detail naming the joint and value."""

    reason: str
    detail: str


class SetpointGate:
    """Validated setpoints of named joints, with per-joint command time-out (hold measured position).

    A command is all-or-nothing: if one value of a multi-joint command is bad, none is applied, so a
    malformed array cannot move some joints and not others.
    """

    def __init__(
        self,
        names: Sequence[str],
        position_min: Sequence[float],
        position_max: Sequence[float],
        cmd_timeout_s: float,
    ) -> None:
        if not (len(names) == len(position_min) == len(position_max)) or len(set(names)) != len(names):
            raise ValueError(
                f"names/position_min/position_max must have one distinct entry per joint, got {names}"
            )
        if cmd_timeout_s <= 0:
            raise ValueError(f"cmd_timeout_s must be > 0, got {cmd_timeout_s}")
        self.names = tuple(names)
        self._index = {n: i for i, n in enumerate(self.names)}
        self.position_min = np.asarray(position_min, dtype=float)
        self.position_max = np.asarray(position_max, dtype=float)
        self.cmd_timeout_s = float(cmd_timeout_s)
        self.refusals: Counter[str] = Counter()
        self.timeouts = 0
        n = len(self.names)
        self._setpoint = np.zeros(n)
        self._last_command = np.full(n, -math.inf)
        self._holding = np.ones(n, dtype=bool)

    def reset(self, measured: Sequence[float] | np.ndarray) -> None:
        """Hold ``measured`` on every joint, as after a time-out (counters are kept)."""
        self._setpoint = np.asarray(measured, dtype=float).copy()
        self._last_command[:] = -math.inf
        self._holding[:] = True

    def command(
        self, names: Sequence[str], values: Sequence[float] | np.ndarray, now: float
    ) -> Refusal | None:
        """Apply a command at time ``now`` (s); returns the refusal (and counts it) or ``None`` if applied."""
        refusal = self._check(names, values)
        if refusal is not None:
            self.refusals[refusal.reason] += 1
            return refusal
        for name, value in zip(names, values, strict=True):
            i = self._index[name]
            self._setpoint[i] = float(value)
            self._last_command[i] = now
            self._holding[i] = False
        return None

    def _check(self, names: Sequence[str], values: Sequence[float] | np.ndarray) -> Refusal | None:
        if len(names) != len(values) or len(names) == 0:
            return Refusal("malformed", f"{len(names)} names for {len(values)} values")
        if len(set(names)) != len(names):
            return Refusal("malformed", f"duplicate joint names in {list(names)}")
        for name, value in zip(names, values, strict=True):
            if name not in self._index:
                return Refusal("unknown_joint", f"unknown joint {name!r} (known: {list(self.names)})")
            if not math.isfinite(value):
                return Refusal("non_finite", f"{name} setpoint is {value}")
            i = self._index[name]
            if not self.position_min[i] <= value <= self.position_max[i]:
                return Refusal(
                    "out_of_range",
                    f"{name} setpoint {value:.6g} outside "
                    f"[{self.position_min[i]:.6g}, {self.position_max[i]:.6g}]",
                )
        return None

    def setpoints(self, measured: Sequence[float] | np.ndarray, now: float) -> np.ndarray:
        """Setpoints at ``now``; a joint whose last command is older than the time-out holds ``measured``."""
        stale = (~self._holding) & (now - self._last_command > self.cmd_timeout_s)
        if stale.any():
            self.timeouts += int(stale.sum())
            self._setpoint[stale] = np.asarray(measured, dtype=float)[stale]
            self._holding[stale] = True
        return self._setpoint.copy()

    @property
    def holding(self) -> np.ndarray:
        """Per joint: True while holding a measured position (never commanded, reset, or timed out)."""
        return self._holding.copy()


class PidArray:
    """Independent PIDs on N joints: ``tau = kp*e + ki*I - kd*qdot``, clipped to ``+-effort_limit``.

    Derivative on the measured velocity (no kick when the setpoint steps). Anti-windup: the integral is
    clamped to ``+-i_clamp`` and not advanced while the output saturates in the direction of the error.
    ``feedforward`` (e.g. gravity torque) is added before clipping, so the limit bounds the total effort.
    """

    def __init__(self, gains: Sequence[PidGains], effort_limits: Sequence[float]) -> None:
        if len(gains) != len(effort_limits):
            raise ValueError(f"{len(gains)} gains for {len(effort_limits)} effort limits")
        if any(not (e > 0 and math.isfinite(e)) for e in effort_limits):
            raise ValueError(f"effort limits must be finite and > 0, got {list(effort_limits)}")
        self.kp = np.array([g.kp for g in gains])
        self.ki = np.array([g.ki for g in gains])
        self.kd = np.array([g.kd for g in gains])
        self.i_clamp = np.array([g.i_clamp for g in gains])
        self.effort_limits = np.asarray(effort_limits, dtype=float)
        self.integral = np.zeros(len(gains))
        self.saturated_steps = 0

    def reset(self) -> None:
        self.integral[:] = 0.0

    def compute(
        self,
        setpoint: np.ndarray,
        position: np.ndarray,
        velocity: np.ndarray,
        dt: float,
        feedforward: np.ndarray | None = None,
    ) -> np.ndarray:
        """Efforts for one control period ``dt`` (s)."""
        if dt <= 0:
            raise ValueError(f"dt must be > 0, got {dt}")
        error = setpoint - position
        ff = np.zeros_like(error) if feedforward is None else feedforward
        unclipped = self.kp * error + self.ki * self.integral - self.kd * velocity + ff
        saturated = np.abs(unclipped) >= self.effort_limits
        # Conditional integration: freeze the integral of a saturated joint whose error pushes further into
        # the limit; otherwise integrate and clamp.
        pushing = saturated & (np.sign(error) == np.sign(unclipped))
        self.integral = np.where(
            pushing, self.integral, np.clip(self.integral + error * dt, -self.i_clamp, self.i_clamp)
        )
        out = self.kp * error + self.ki * self.integral - self.kd * velocity + ff
        clipped = np.clip(out, -self.effort_limits, self.effort_limits)
        self.saturated_steps += int(saturated.any())
        return clipped
