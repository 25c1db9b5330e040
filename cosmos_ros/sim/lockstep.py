"""The simulator's side of the lockstep protocol with the planner and the safety node (pure, no ROS).

Goal: results that do not depend on CPU speed. The sim owns time; it advances ``/clock`` one control tick
(``tick_s``) at a time and, while it waits for an answer, time stands still. Per tick ``t``:

1. publish ``joint_states(t)`` and ``/clock(t)``; wait for the safety node's setpoint of tick ``t`` (one per
   tick once it streams: its control timer fires once per ``/clock`` step of one control period);
2. publish ``t`` on the *planner's* clock topic (the planner's ``/clock`` is remapped to it). The planner sees
   ``t`` only after the safety node has ticked at ``t``, so a plan the planner releases at ``t`` is always
   checked *after* that tick (it takes effect at ``t + tick_s``), never racing it;
3. if the planner holds a plan whose release time has come (emulated latency), wait for its ``DONE``
   report and, when it published a plan, for the safety node's decision on it (``SafetyStatus.plan_id``);
4. else, if a camera frame is due and the planner is idle, publish the frame stamped ``t`` and wait for the
   planner's report on it (``HELD`` or ``DONE``), and for the safety decision of a published plan;
5. apply the setpoint, step the physics to ``t + tick_s``.

The one input without an acknowledgement is the measured state: the safety node takes ``joint_states`` and
``/clock`` on different subscriptions, and its tick at ``t`` uses whichever state it has taken by then (it
matters through ``max_step_from_measured``). The sim publishes ``joint_states(t)`` ``state_settle_s`` of wall
time before ``/clock(t)``, as the bag replay's lockstep does; removing this last race needs the safety node to
acknowledge the state (e.g. tick on the state message, or report the stamp of the state a tick used).

A camera frame is only sent to an idle planner, so which frame the model sees never depends on how long it
took on the previous one. Waits end by timeout only when a node failed; those are counted
(``lockstep_timeouts``) and a deterministic run has none.

:class:`PlannerLink` is the bookkeeping of steps 3-4; the node feeds it the planner's reports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LinkState(enum.Enum):
    IDLE = "idle"  # may receive a frame
    AWAITING = "awaiting"  # a frame was sent; no report yet (the sim waits, time frozen)
    HELD = "held"  # the model finished; the plan is released at `release_ns` (time runs meanwhile)
    RELEASING = "releasing"  # release time reached; waiting for DONE (time frozen)


@dataclass(frozen=True)
class Report:
    """A planner report (``cosmos_ros/PlannerState``) in plain numbers: event, stamps in ns, plan id."""

    event: str  # "goal" | "held" | "done"
    frame_stamp_ns: int = 0
    release_at_ns: int = 0
    plan_id: int = 0
    goal: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        if self.event not in ("goal", "held", "done"):
            raise ValueError(f"event must be goal, held or done, got {self.event!r}")


class LockstepError(RuntimeError):
    """A report that does not fit the protocol (wrong frame, unexpected event): a bug in a node."""


class PlannerLink:
    """The sim's view of one planner: idle, computing on a frame, or holding a plan until its release time."""

    def __init__(self) -> None:
        self.state = LinkState.IDLE
        self.frame_ns: int | None = None
        self.release_ns: int | None = None
        self.frames_sent = 0
        self.plans = 0
        self.no_plan: dict[str, int] = {}

    def frame_sent(self, stamp_ns: int) -> None:
        if self.state is not LinkState.IDLE:
            raise LockstepError(f"frame sent while the planner is {self.state.value}")
        self.state, self.frame_ns, self.release_ns = LinkState.AWAITING, stamp_ns, None
        self.frames_sent += 1

    def release_due(self, now_ns: int) -> bool:
        """True when a held plan's release time has come: the sim must wait for ``DONE`` at this tick."""
        if self.state is LinkState.HELD and self.release_ns is not None and now_ns >= self.release_ns:
            self.state = LinkState.RELEASING
        return self.state is LinkState.RELEASING

    @property
    def waiting(self) -> bool:
        """True while time must stand still for this planner (a report is due now)."""
        return self.state in (LinkState.AWAITING, LinkState.RELEASING)

    def on_report(self, report: Report) -> int | None:
        """Take a ``held``/``done`` report about the current frame; returns the plan id to await a safety
        decision for (``None`` when no plan was published).

        Raises:
            LockstepError: the report is about another frame, or comes in a state that cannot have it.
        """
        if report.event == "goal":
            return None
        if self.state is LinkState.IDLE or report.frame_stamp_ns != self.frame_ns:
            raise LockstepError(
                f"{report.event} report for frame {report.frame_stamp_ns} ns while {self.state.value} "
                f"(frame {self.frame_ns})"
            )
        if report.event == "held":
            if self.state is not LinkState.AWAITING or report.release_at_ns < report.frame_stamp_ns:
                raise LockstepError(f"held report while {self.state.value}, release {report.release_at_ns}")
            self.state, self.release_ns = LinkState.HELD, report.release_at_ns
            return None
        self.state, self.frame_ns, self.release_ns = LinkState.IDLE, None, None
        if report.plan_id > 0:
            self.plans += 1
            return report.plan_id
        self.no_plan[report.detail] = self.no_plan.get(report.detail, 0) + 1
        return None


def camera_due(tick_index: int, ticks_per_frame: int) -> bool:
    """A planning frame is due on every ``ticks_per_frame``-th tick of the episode (tick 0 included)."""
    if ticks_per_frame < 1:
        raise ValueError(f"ticks_per_frame must be >= 1, got {ticks_per_frame}")
    return tick_index % ticks_per_frame == 0


def seconds_to_ns(seconds: float) -> int:
    """Sim times travel as integer nanoseconds so the sim and the nodes compare the same numbers."""
    return round(seconds * 1e9)
