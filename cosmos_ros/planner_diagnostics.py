"""The planner node's diagnostics as a pure function: counters and stats in; level, summary, key/values out.

The node gathers one :class:`PlannerSnapshot` and publishes what :func:`planner_diagnostics` returns as a
``diagnostic_msgs/DiagnosticStatus``; tests call the function with made-up snapshots, no ROS graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cosmos_ros.camera_watch import Silence
from cosmos_ros.diagnostics import DiagnosticsReport, Level
from cosmos_ros.frames import FrameStats
from cosmos_ros.inference_worker import FRAMES_DROPPED
from cosmos_ros.latency import LatencyStats

# Counter keys of failures. Image and goal rejections are "rejected_<reason>"; together they are the
# errors the diagnostics count and warn about.
MODEL_ERROR = "model_error"
PUBLISH_ERROR = "publish_error"
TILE_ERROR = "tile_error"
SERVER_ERROR = "server_error"  # the policy server was lost, restarted or changed (backend "server")
ERROR_COUNTERS = (MODEL_ERROR, PUBLISH_ERROR, TILE_ERROR, SERVER_ERROR)
REJECTED_PREFIX = "rejected_"


@dataclass(frozen=True)
class PlannerSnapshot:
    """Everything one planner diagnostics message is computed from.

    Attributes:
        counts: The node's counters (``Counters.snapshot()``).
        active: Whether the node is active.
        goal: The current goal ('' for none).
        plan_rate_hz: Plans per second over the recent window.
        inference_last_s / inference_mean_s: Inference time of the last plan and the window's mean.
        latency: Latency accounting (node clock).
        warmup_latency_s: Latency measured by the warm-up inference; None before (or without) one.
        next_plan_id: Id the next plan gets.
        frames: Frame buffer counters; None before configure.
        server: The policy server client's stats (backend ``server``); None otherwise.
        silent_cameras: Cameras without frames (reported while active only).
        last_errors: Errors counted at the previous message (a rise is a warning).
    """

    counts: Mapping[str, int]
    active: bool
    goal: str
    plan_rate_hz: float
    inference_last_s: float
    inference_mean_s: float
    latency: LatencyStats
    warmup_latency_s: float | None
    next_plan_id: int
    frames: FrameStats | None = None
    server: Mapping[str, Any] | None = None
    silent_cameras: Sequence[Silence] = ()
    last_errors: int = 0


@dataclass(frozen=True)
class PlannerDiagnostics:
    """The report and the error count to pass as ``last_errors`` next time."""

    report: DiagnosticsReport
    errors: int


def count_errors(counts: Mapping[str, int]) -> int:
    """Rejections plus model, publish, tile and server errors."""
    return sum(v for k, v in counts.items() if k.startswith(REJECTED_PREFIX) or k in ERROR_COUNTERS)


def planner_diagnostics(s: PlannerSnapshot) -> PlannerDiagnostics:
    """The planner's diagnostics for one snapshot (see :class:`PlannerSnapshot`)."""
    errors = count_errors(s.counts)
    values = {
        "active": str(s.active),
        "goal": s.goal,
        "plan_rate_hz": f"{s.plan_rate_hz:.3f}",
        "inference_time_last_s": f"{s.inference_last_s:.4f}",
        "inference_time_mean_s": f"{s.inference_mean_s:.4f}",
        **latency_values(s.latency, s.warmup_latency_s),
        "next_plan_id": str(s.next_plan_id),
        "errors_total": str(errors),
    }
    if s.frames is not None:
        values["frames_received"] = str(sum(s.frames.received.values()))
        values["frames_dropped_unsynced"] = str(s.frames.total_dropped)
    counts = dict(s.counts)
    values["frame_sets_dropped"] = str(counts.pop(FRAMES_DROPPED, 0))
    values.update({k: str(v) for k, v in counts.items()})
    if s.server is not None:  # handshakes (1 + reconnects), calls ok/failed, last error, connected
        values.update({f"server_{k}": str(v) for k, v in s.server.items()})
    silent = s.silent_cameras if s.active else ()
    values.update({f"camera_silent_s:{c.topic}": f"{c.silent_s:.1f}" for c in silent})
    level, message = _summary(s, errors, silent)
    return PlannerDiagnostics(DiagnosticsReport(level, message, values), errors)


def _summary(s: PlannerSnapshot, errors: int, silent: Sequence[Silence]) -> tuple[Level, str]:
    if silent:
        names = ", ".join(c.topic for c in silent)
        return Level.WARN, f"no camera frames on {names} (see the log)"
    if errors > s.last_errors:
        return Level.WARN, f"{errors - s.last_errors} new errors/rejections"
    if not s.active:
        return Level.OK, "inactive"
    return Level.OK, "planning" if s.goal else "idle (no goal)"


def latency_values(st: LatencyStats, warmup_s: float | None) -> dict[str, str]:
    """Latency accounting for /diagnostics (node clock, s)."""
    return {
        "latency_samples": str(st.count),
        "latency_last_s": f"{st.last_s:.4f}",
        "latency_mean_s": f"{st.mean_s:.4f}",
        "latency_p95_s": f"{st.p95_s:.4f}",
        "latency_max_s": f"{st.max_s:.4f}",
        "warmup_latency_s": "" if warmup_s is None else f"{warmup_s:.4f}",
    }
