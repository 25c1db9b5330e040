"""Faults a robot meets, on the core (fast, no ROS graph): planner restarted with a fresh plan_id sequence,
planner frozen and resumed, /clock jumping backwards and forwards. Each checks what streams with the
independent finite-difference checker (``verify.find_violations``) and that the stream recovers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cosmos_ros.plan import Plan
from cosmos_ros.safety import Decision, OutputState, SafetyLimits, SafetySupervisor, load_limits
from cosmos_ros.safety.verify import find_violations

CONFIG = Path(__file__).resolve().parents[1] / "config" / "limits"
DT = 0.01
HOME = np.array([0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.0, 0.04])
OLD, NEW = 1_000, 2_000  # planner session ids (a restarted planner has the larger one)


@pytest.fixture
def arm() -> SafetyLimits:
    return load_limits(CONFIG / "arm7_joints.yaml")


def plan(limits: SafetyLimits, plan_id: int, t0: float, session: int, delta: float = 0.3) -> Plan:
    values = np.tile(HOME, (20, 1))
    values[:, 0] = np.linspace(0.0, delta, 20)
    return Plan(
        plan_id=plan_id,
        stamp_s=t0,
        t0_s=t0,
        step_period_s=0.1,
        axis_names=limits.axis_names,
        values=values,
        frame_id=limits.frame_id,
        action_space=limits.action_space,
        planner_session_id=session,
    )


def started(limits: SafetyLimits) -> SafetySupervisor:
    sup = SafetySupervisor(limits)
    sup.activate(0.0)
    assert sup.set_measured(HOME, 0.0)
    assert sup.tick(0.0) is not None
    return sup


def stream(sup: SafetySupervisor, times: list[float]) -> list:
    out = []
    for t in times:
        sp = sup.tick(t)
        assert sp is not None
        out.append(sp)
        assert sup.set_measured(sp.positions, t)
    return out


def violations(limits: SafetyLimits, sps: list) -> list:
    arr = limits.column_arrays(np.inf)
    pos = np.array([HOME] + [sp.positions for sp in sps])
    return find_violations(
        pos,
        DT,
        min_position=arr["min_position"],
        max_position=arr["max_position"],
        max_velocity=arr["max_velocity"],
        max_acceleration=arr["max_acceleration"],
        max_jerk=arr["max_jerk"],
    )


def ticks(t0: float, n: int) -> list[float]:
    return [t0 + k * DT for k in range(n)]


def test_restarted_planner_with_fresh_plan_ids_is_accepted_and_the_old_one_refused(arm: SafetyLimits) -> None:
    sup = started(arm)
    for i in range(1, 4):
        assert sup.push(plan(arm, i, 0.1 * i, OLD), 0.1 * i).streamed
    sps = stream(sup, ticks(0.01, 40))
    # Restart: plan_id starts again at 1 in a larger session.
    assert sup.push(plan(arm, 1, 0.4, NEW, delta=-0.2), 0.4).streamed
    sps += stream(sup, ticks(0.41, 10))
    # The old instance (e.g. frozen, then resumed) must never take over again, whatever its plan_id.
    late = sup.push(plan(arm, 99, 0.5, OLD), 0.5)
    assert late.decision == Decision.REJECTED and late.reasons == ("planner_session",)
    replay = sup.push(plan(arm, 1, 0.5, NEW), 0.5)
    assert replay.decision == Decision.REJECTED and replay.reasons == ("plan_id",)
    sps += stream(sup, ticks(0.51, 200))
    assert {sp.plan_id for sp in sps[50:]} <= {1, 0}
    assert violations(arm, sps) == []


def test_frozen_planner_watchdog_brakes_then_resumed_stale_plan_is_refused(arm: SafetyLimits) -> None:
    sup = started(arm)
    assert sup.push(plan(arm, 1, 0.0, OLD, delta=1.0), 0.0).streamed
    sps = stream(sup, ticks(0.01, 100))  # the planner freezes (SIGSTOP) at ~1 s: no new plans
    sps += stream(sup, ticks(1.01, 300))  # the plan ends at 1.9 s: the watchdog brakes to rest
    states = [sp.state for sp in sps]
    assert OutputState.DECELERATING in states and states[-1] == OutputState.HOLDING
    rest = next(i for i, sp in enumerate(sps) if sp.stamp_s > 1.9 and sp.state == OutputState.HOLDING)
    assert sps[rest].stamp_s - 1.9 < 1.0  # at rest within a second of the plan's end
    # Resumed (SIGCONT): the plan it had computed before the freeze is stale now; a fresh one is followed.
    stale = sup.push(plan(arm, 2, 1.0, OLD), 4.0)
    assert stale.decision == Decision.REJECTED and stale.reasons == ("stale",)
    assert sup.push(plan(arm, 3, 4.0, OLD, delta=0.5), 4.0).streamed
    sps += stream(sup, ticks(4.0, 50))
    assert sps[-1].state == OutputState.STREAMING
    assert violations(arm, sps) == []


@pytest.mark.parametrize("jump_s", [-5.0, +5.0])
def test_clock_jump_stays_within_limits_and_recovers_with_new_plans(arm: SafetyLimits, jump_s: float) -> None:
    sup = started(arm)
    assert sup.push(plan(arm, 1, 0.0, OLD, delta=1.0), 0.0).streamed
    sps = stream(sup, ticks(0.01, 50))
    assert sps[-1].state == OutputState.STREAMING
    # /clock jumps: the running plan no longer covers "now" (before its start or after its end).
    t = 0.5 + jump_s
    sps += stream(sup, ticks(t, 200))
    assert all(sp.plan_id == 0 for sp in sps[50:])  # the old plan is not followed at the jumped time
    assert sps[-1].state == OutputState.HOLDING
    stale = sup.push(plan(arm, 2, 0.5, OLD), t + 2.0)  # stamped on the old time line
    assert stale.decision == Decision.REJECTED and stale.reasons == ("stale",)
    assert sup.push(plan(arm, 3, t + 2.0, OLD, delta=-0.3), t + 2.0).streamed
    sps += stream(sup, ticks(t + 2.0, 30))
    assert sps[-1].state == OutputState.STREAMING and sps[-1].plan_id == 3
    assert violations(arm, sps) == []  # the limiter runs per tick: a clock jump is never a step
