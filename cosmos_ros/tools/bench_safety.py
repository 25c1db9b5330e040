"""Benchmark of the safety core: check+clamp time per plan and time per control tick.

    python -m cosmos_ros.tools.bench_safety               # arm7 joints + UMI pose, 16- and 64-step plans
    python -m cosmos_ros.tools.bench_safety --repeats 200 --ticks 5000

What is timed (``time.perf_counter_ns``, one call at a time, medians and 99th percentiles):

- ``push``: ``SafetySupervisor.push`` = rejection checks + bounds clamp + the per-plan rate estimate
  (the limiter run over the plan's steps) + scheduling, for a plan that is clamped (a sine that crosses
  a joint bound and exceeds the velocity limit: the expensive path) and for one that is accepted unchanged.
- ``check``: ``check_plan`` alone (the rejections).
- ``tick``: ``SafetySupervisor.tick`` while streaming a plan (target sampling, max-step window, bounds,
  jerk-limited limiter with its braking check, orientation for pose) and while the watchdog decelerates.

This measures the machine it runs on (shared CPUs make p99 worse); it is not a test and asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cosmos_ros.plan import Plan
from cosmos_ros.safety import SafetyLimits, SafetySupervisor, SupervisorConfig, check_plan, load_limits

CONFIG = Path(__file__).resolve().parents[2] / "config" / "limits"


def _find_config(name: str) -> Path:
    local = CONFIG / name
    if local.exists():
        return local
    try:  # installed: share/cosmos_ros/config/limits
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("cosmos_ros")) / "config" / "limits" / name
    except Exception as exc:  # pragma: no cover - depends on the install
        raise FileNotFoundError(f"cannot find config/limits/{name}") from exc


def _start_state(limits: SafetyLimits) -> np.ndarray:
    arr = limits.column_arrays(10.0)
    start = 0.5 * (arr["min_position"] + arr["max_position"])
    if limits.kind == "pose":
        start[3:7] = [1.0, 0.0, 0.0, 0.0]
    return start


def _plan_values(limits: SafetyLimits, steps: int, clamped: bool) -> np.ndarray:
    start = _start_state(limits)
    t = np.arange(steps) * 0.1
    values = np.tile(start, (steps, 1))
    arr = limits.column_arrays(10.0)
    span = arr["max_position"] - arr["min_position"]
    amplitude = (0.8 if clamped else 0.02) * span
    freq = 3.0 if clamped else 0.5
    linear = np.ones(len(start), dtype=bool)
    if limits.kind == "pose":
        linear[3:7] = False
        angle = (0.6 if clamped else 0.05) * np.sin(freq * t)
        values[:, 3] = np.cos(angle / 2)
        values[:, 4] = np.sin(angle / 2)
        values[:, 5] = 0.0
        values[:, 6] = 0.0
    values[:, linear] += amplitude[linear] * np.sin(freq * t)[:, None]
    return values


def _plan(limits: SafetyLimits, values: np.ndarray, plan_id: int, now: float) -> Plan:
    return Plan(
        plan_id=plan_id,
        stamp_s=now,
        t0_s=now,
        step_period_s=0.1,
        axis_names=limits.axis_names,
        values=values,
        frame_id=limits.frame_id,
        action_space=limits.action_space,
    )


def _stats(samples_ns: list[int]) -> tuple[float, float]:
    arr = np.array(samples_ns, dtype=np.float64) / 1e3
    return float(np.median(arr)), float(np.percentile(arr, 99))


def _time(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        samples.append(time.perf_counter_ns() - t0)
    return _stats(samples)


def bench(limits: SafetyLimits, repeats: int, ticks: int) -> list[tuple[str, str, float, float]]:
    rows: list[tuple[str, str, float, float]] = []
    dt = 1.0 / limits.control_rate_hz
    start = _start_state(limits)
    for steps in (16, 64):
        for clamped in (True, False):
            values = _plan_values(limits, steps, clamped)
            sup = SafetySupervisor(limits, SupervisorConfig())
            sup.activate(0.0)
            sup.set_measured(start, 0.0)
            sup.tick(0.0)
            decision = sup.push(_plan(limits, values, 1, 0.0), 0.0)
            label = f"push {steps:>2}-step plan ({decision.decision.name.lower()})"

            def push(i: int, v: np.ndarray = values, s: SafetySupervisor = sup) -> None:
                s.push(_plan(limits, v, i + 2, 0.0), 0.0)

            med, p99 = _time(push, repeats)
            rows.append((limits.action_space, label, med, p99))
        plan = _plan(limits, _plan_values(limits, steps, True), 1, 0.0)

        def check(i: int, p: Plan = plan) -> None:
            check_plan(p, limits, 0.0, 0)

        med, p99 = _time(check, repeats)
        rows.append((limits.action_space, f"check {steps:>2}-step plan (rejections only)", med, p99))

    # Streaming ticks: a long plan (gentle = accepted unchanged; aggressive = clamped, saturating the
    # velocity limits and running into joint bounds), with the robot tracking the command.
    steps = int(ticks * dt / 0.1) + 2
    # One plan covers all timed ticks, so it may be longer than the file's max_plan_steps: allow it here.
    long_limits = dataclasses.replace(limits, max_plan_steps=max(limits.max_plan_steps, steps))
    for clamped in (False, True):
        sup = SafetySupervisor(long_limits, SupervisorConfig())
        sup.activate(0.0)
        sup.set_measured(start, 0.0)
        sup.tick(0.0)
        sup.push(_plan(limits, _plan_values(limits, steps, clamped), 1, 0.0), 0.0)

        def streaming(i: int, s: SafetySupervisor = sup) -> None:
            sp = s.tick((i + 1) * dt)
            if sp is not None:
                s.set_measured(sp.positions, (i + 1) * dt)

        med, p99 = _time(streaming, ticks)
        what = "aggressive plan, clamped" if clamped else "gentle plan, unchanged"
        rows.append((limits.action_space, f"tick while streaming ({what})", med, p99))
    # Watchdog: plan ended, braking to rest then holding.
    t_end = (ticks + 1) * dt

    def watchdog(i: int) -> None:
        sup.tick(t_end + i * dt)

    med, p99 = _time(watchdog, min(ticks, 2000))
    rows.append((limits.action_space, "tick in watchdog (decelerate, then hold)", med, p99))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300, help="push/check calls timed per row")
    parser.add_argument("--ticks", type=int, default=10000, help="streaming ticks timed")
    args = parser.parse_args(argv)
    rows = []
    for name in ("arm7_joints.yaml", "umi_pose_gripper.yaml"):
        rows += bench(load_limits(_find_config(name)), args.repeats, args.ticks)
    print(f"{'action space':<18} {'what':<44} {'median µs':>10} {'p99 µs':>10}")
    print("-" * 85)
    for space, what, med, p99 in rows:
        print(f"{space:<18} {what:<44} {med:>10.1f} {p99:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
