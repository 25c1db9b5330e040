"""The safety node's diagnostics as a pure function: counters and state in, level, summary and key/values out.

The node takes one :class:`SafetySnapshot` (the core's state under its lock, its own counters, the tick
histograms) and publishes what :func:`safety_diagnostics` returns as a ``diagnostic_msgs/DiagnosticStatus``;
tests call the function with made-up snapshots, no ROS graph.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from cosmos_ros.diagnostics import DiagnosticsReport, Level
from cosmos_ros.safety.intervals import IntervalHistogram
from cosmos_ros.safety.supervisor import OutputState, SupervisorCounters

STATE_NAMES: Mapping[OutputState, str] = {
    OutputState.IDLE: "idle",
    OutputState.STREAMING: "streaming",
    OutputState.HOLDING: "holding",
    OutputState.DECELERATING: "decelerating",
    OutputState.ESTOP: "estop",
    OutputState.WAITING_FOR_STATE: "waiting_for_state",
}


@dataclass(frozen=True)
class NodeCounters:
    """What the node counts beside the core's :class:`SupervisorCounters`.

    Attributes:
        errors: Internal errors by callback (``tick``, ``plan``...); each sent nothing.
        node_rejections: Plans the core never saw (malformed message, internal error), by reason.
        measured_rejected: Measured states the node could not use (core refusals plus unusable messages).
        setpoints_sent: Setpoints published since configure.
    """

    errors: Mapping[str, int] = field(default_factory=dict)
    node_rejections: Mapping[str, int] = field(default_factory=dict)
    measured_rejected: int = 0
    setpoints_sent: int = 0


@dataclass(frozen=True)
class RateWindow:
    """Events since the previous diagnostics message, for rates.

    Attributes:
        seconds: Length of the window (wall time, > 0).
        ticks: Control ticks in it.
        setpoints: Setpoints published in it.
        plans: Plans received in it.
    """

    seconds: float
    ticks: int = 0
    setpoints: int = 0
    plans: int = 0

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds!r}")


@dataclass(frozen=True)
class SafetySnapshot:
    """Everything one diagnostics message is computed from.

    Attributes:
        counters: The supervisor's counters.
        output_state: The supervisor's output state.
        estop_latched: Whether the e-stop is latched.
        measured_problem: Why the measured state is refused ('' if it is not).
        active: Whether the node is active.
        shadow_mode: Whether setpoints go to shadow topics only.
        control_rate_hz: The control rate.
        missing_axes: Axes with no measured value yet.
        node: The node's own counters.
        window: Events since the last message.
        window_intervals: Tick intervals in the window.
        total_intervals: Tick intervals since activation.
    """

    counters: SupervisorCounters
    output_state: OutputState
    estop_latched: bool
    measured_problem: str
    active: bool
    shadow_mode: bool
    control_rate_hz: float
    missing_axes: tuple[str, ...]
    node: NodeCounters
    window: RateWindow
    window_intervals: IntervalHistogram
    total_intervals: IntervalHistogram


def safety_diagnostics(s: SafetySnapshot) -> DiagnosticsReport:
    """The safety node's diagnostics for one snapshot (see :class:`SafetySnapshot`)."""
    level, message = _summary(s)
    return DiagnosticsReport(level, message, {**_state_values(s), **_count_values(s), **_interval_values(s)})


def _summary(s: SafetySnapshot) -> tuple[Level, str]:
    """The most severe condition wins: e-stop, refused measured state, errors, waiting, watchdog, ok."""
    name = STATE_NAMES[s.output_state]
    errors = sum(s.node.errors.values())
    if s.estop_latched:
        return Level.ERROR, "e-stop latched"
    if s.measured_problem:
        return Level.ERROR, f"measured state implausible, nothing streamed: {s.measured_problem}"
    if errors:
        return Level.WARN, f"{errors} internal errors (held)"
    if s.output_state == OutputState.WAITING_FOR_STATE and s.active:
        return Level.WARN, f"no measured state yet for {list(s.missing_axes)}"
    if s.output_state in (OutputState.HOLDING, OutputState.DECELERATING):
        return Level.WARN, f"watchdog: {name}"
    return Level.OK, name if s.active else "inactive"


def _state_values(s: SafetySnapshot) -> dict[str, str]:
    w = s.window
    return {
        "output_state": STATE_NAMES[s.output_state],
        "active": str(s.active),
        "estop_latched": str(s.estop_latched),
        "shadow_mode": str(s.shadow_mode),
        "control_rate_hz": f"{s.control_rate_hz:g}",
        "tick_rate_hz": f"{w.ticks / w.seconds:.2f}",
        "setpoint_rate_hz": f"{w.setpoints / w.seconds:.2f}",
        "plan_rate_hz": f"{w.plans / w.seconds:.3f}",
    }


def _count_values(s: SafetySnapshot) -> dict[str, str]:
    """Plan and tick counters; plans the node rejected itself count as received and rejected."""
    c, node = s.counters, s.node
    node_rejected = sum(node.node_rejections.values())
    return {
        "plans_received": str(c.plans_received + node_rejected),
        "plans_accepted": str(c.plans_accepted),
        "plans_clamped": str(c.plans_clamped),
        "plans_rejected": str(c.plans_rejected + node_rejected),
        "steps_skipped": str(c.steps_skipped),
        "setpoints_sent": str(node.setpoints_sent),
        "ticks_limited": str(c.ticks_limited),
        "watchdog_activations": str(c.watchdog_activations),
        "estops": str(c.estops),
        "measured_rejected": str(node.measured_rejected),
    }


def _interval_values(s: SafetySnapshot) -> dict[str, str]:
    """Tick-interval percentiles (window and total), error count, then the per-reason breakdowns."""
    c, hw, ht = s.counters, s.window_intervals, s.total_intervals
    values = {
        "tick_interval_p50_ms": _ms(hw.percentile(50)),
        "tick_interval_p99_ms": _ms(hw.percentile(99)),
        "tick_interval_max_ms": _ms(hw.max_s),
        "tick_interval_total_count": str(ht.count),
        "tick_interval_total_p50_ms": _ms(ht.percentile(50)),
        "tick_interval_total_p99_ms": _ms(ht.percentile(99)),
        "tick_interval_total_max_ms": _ms(ht.max_s),
        "internal_errors": str(sum(s.node.errors.values())),
    }
    rejections = Counter(dict(c.rejections_by_reason)) + Counter(dict(s.node.node_rejections))
    values.update({f"rejected.{r}": str(n) for r, n in sorted(rejections.items())})
    values.update({f"limited_ticks.{r}": str(n) for r, n in sorted(c.limited_by_reason.items())})
    values.update(
        {f"measured_rejected.{r}": str(n) for r, n in sorted(c.measured_rejected_by_reason.items())}
    )
    values["estop_resets_refused"] = str(c.estop_resets_refused)
    values.update({f"internal_error.{w}": str(n) for w, n in sorted(s.node.errors.items())})
    return values


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"
