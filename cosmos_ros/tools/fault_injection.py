"""Fault injection on the safety core: what streams when the planner or the clock misbehaves.

Runs the ``SafetySupervisor`` in-process (stepped time, no ROS graph) against a simulated planner that sends a
16-step chunk every 1/15 s, injects one fault per scenario, and prints a table: the fault, what was streamed,
whether the stream is within the limits (decided by the independent checker ``cosmos_ros.safety.verify``),
and the time until the output was at rest (watchdog) or following new plans again (recovery).

Two tables:

- default: the faults as the safety core sees them (plans stop, pause, restart with a fresh ``plan_id``
  sequence in a new session, or the clock jumps), in-process, no ROS graph;
- ``--processes``: the same faults done to real processes over DDS (planner SIGKILL, SIGSTOP/SIGCONT,
  restart, a second participant with the same node name, the safety node SIGKILL and restart, ``/clock``
  jumps), with the expert planner, the safety node and the sim's robot (PID controllers with their command
  time-out) in stepped time; see ``cosmos_ros/tools/process_faults.py``. Needs the ROS 2 install space.

Usage::

    python -m cosmos_ros.tools.fault_injection [--limits config/limits/arm7_joints.yaml] [--processes]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cosmos_ros.plan import Plan
from cosmos_ros.safety import OutputState, SafetyLimits, SafetySupervisor, load_limits
from cosmos_ros.safety.verify import find_violations

PLAN_PERIOD_S = 1.0 / 15.0
CHUNK = 16
FAULT_AT_S = 2.0
END_S = 8.0


@dataclass
class Planner:
    """A planner stand-in: a slow sine on the first axis, one chunk per ``PLAN_PERIOD_S``."""

    limits: SafetyLimits
    home: np.ndarray
    session: int = 1
    next_id: int = 1
    clock_offset_s: float = 0.0

    def plan(self, now: float) -> Plan:
        t = now + np.arange(CHUNK) * PLAN_PERIOD_S
        values = np.tile(self.home, (CHUNK, 1))
        values[:, 0] = self.home[0] + 0.4 * np.sin(0.8 * (t - self.clock_offset_s))
        p = Plan(
            plan_id=self.next_id,
            stamp_s=now,
            t0_s=now,
            step_period_s=PLAN_PERIOD_S,
            axis_names=self.limits.axis_names,
            values=values,
            frame_id=self.limits.frame_id,
            action_space=self.limits.action_space,
            planner_session_id=self.session,
        )
        self.next_id += 1
        return p


@dataclass
class Result:
    fault: str
    streamed: str
    within_limits: bool
    time_to_rest_s: float | None
    time_to_recover_s: float | None
    notes: str = ""


# A scenario says, at each planner slot, whether the planner sends (and may change the planner or the clock).
Scenario = Callable[[float, Planner], bool]


def _kill(t: float, planner: Planner) -> bool:
    return t < FAULT_AT_S


def _freeze(t: float, planner: Planner) -> bool:
    return not FAULT_AT_S <= t < FAULT_AT_S + 2.0


def _restart(t: float, planner: Planner) -> bool:
    if FAULT_AT_S <= t < FAULT_AT_S + 1.0:
        return False
    if t >= FAULT_AT_S + 1.0 and planner.session == 1:
        planner.session, planner.next_id = 2, 1  # a new process: fresh plan_id sequence, larger session
    return True


SCENARIOS: dict[str, tuple[Scenario, float]] = {
    "planner killed (no more plans)": (_kill, 0.0),
    "planner frozen 2 s, then resumed": (_freeze, 0.0),
    "planner restarted (new session, plan_id from 1)": (_restart, 0.0),
    "/clock jumps back 5 s": (lambda t, p: True, -5.0),
    "/clock jumps forward 5 s": (lambda t, p: True, +5.0),
}


def run_scenario(limits: SafetyLimits, name: str, scenario: Scenario, clock_jump_s: float) -> Result:
    home = np.array(
        [0.5 * (a.min_position + a.max_position) for a in limits.axes]  # type: ignore[operator]
    )
    sup = SafetySupervisor(limits)
    dt = sup.dt
    sup.activate(0.0)
    sup.set_measured(home, 0.0)
    planner = Planner(limits, home)
    positions, states, ids = [], [], []
    next_plan = 0.0
    n = round(END_S / dt)
    for k in range(n):
        t = k * dt
        now = t + (clock_jump_s if t >= FAULT_AT_S else 0.0)
        planner.clock_offset_s = clock_jump_s if t >= FAULT_AT_S else 0.0
        if t >= next_plan - 1e-9:
            next_plan += PLAN_PERIOD_S
            if scenario(t, planner):
                sup.push(planner.plan(now), now)
        sp = sup.tick(now)
        if sp is None:
            continue
        positions.append(sp.positions)
        states.append(sp.state)
        ids.append((sp.plan_id, planner.session))
        sup.set_measured(sp.positions, now)
    arr = limits.column_arrays(np.inf)
    violations = find_violations(
        np.array(positions),
        dt,
        min_position=arr["min_position"],
        max_position=arr["max_position"],
        max_velocity=arr["max_velocity"],
        max_acceleration=arr["max_acceleration"],
        max_jerk=arr["max_jerk"],
    )
    fault_k = round(FAULT_AT_S / dt)
    after = states[fault_k:]
    rest = next((i for i, s in enumerate(after) if s == OutputState.HOLDING), None)
    recover = None
    if rest is not None:
        recover = next((i for i in range(rest, len(after)) if after[i] == OutputState.STREAMING), None)
    counts = {s.name.lower(): after.count(s) for s in OutputState if after.count(s)}
    streamed = ", ".join(f"{k} {v * dt:.2f} s" for k, v in counts.items())
    return Result(
        name,
        streamed,
        violations == [],
        None if rest is None else rest * dt,
        None if recover is None else recover * dt,
    )


def format_table(results: list[Result]) -> str:
    notes = any(r.notes for r in results)
    head: tuple[str, ...] = ("fault", "streamed after the fault", "within limits", "to rest", "to recovery")
    head += ("notes",) if notes else ()
    rows = [
        (
            r.fault,
            r.streamed,
            "yes" if r.within_limits else "NO",
            "-" if r.time_to_rest_s is None else f"{r.time_to_rest_s:.2f} s",
            "-" if r.time_to_recover_s is None else f"{r.time_to_recover_s:.2f} s",
        )
        + ((r.notes or "-",) if notes else ())
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in (head, *rows)]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limits", default="", help="limits file (default: the package's arm7_joints.yaml)")
    p.add_argument("--processes", action="store_true", help="real processes over DDS (see the docstring)")
    args = p.parse_args(argv)
    if not args.limits:  # the source checkout's or the install space's share directory
        from cosmos_ros.tools.eval_closed_loop import _limits_path

        args.limits = str(_limits_path())
    if args.processes:
        return _main_processes(args.limits)
    limits = load_limits(args.limits)
    results = [run_scenario(limits, name, sc, jump) for name, (sc, jump) in SCENARIOS.items()]
    print(
        f"fault at t = {FAULT_AT_S:g} s; core in-process, {1.0 / PLAN_PERIOD_S:g} Hz plans of {CHUNK} steps"
    )
    print(format_table(results))
    print("real processes (SIGKILL/SIGSTOP, restarts, a DDS participant restart): run with --processes")
    return 0 if all(r.within_limits for r in results) else 1


def _main_processes(limits_file: str) -> int:
    from cosmos_ros.testing.ros_harness import pick_domain_id
    from cosmos_ros.tools import process_faults as pf

    results = []
    for i, name in enumerate(pf.SCENARIOS):
        r, _ = pf.run_scenario(name, (pick_domain_id() + i) % 100 + 1, limits_file)
        results.append(
            Result(r.fault, r.streamed, r.within_limits, r.time_to_rest_s, r.time_to_recover_s, r.notes)
        )
        print(f"[faults] {name}: done", flush=True)
    print(
        f"fault at t = {pf.FAULT_AT_S:g} s of sim time (the arm moving); real processes over DDS: the safety "
        "node, the expert planner (frames every 0.2 s, 16-step plans at 15 Hz), the sim's robot (PID "
        "controllers, 0.2 s command time-out) stepped by the rig at 10 ms; times are sim time"
    )
    print(format_table(results))
    return 0 if all(r.within_limits for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
