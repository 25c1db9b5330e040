"""Closed-loop evaluation: sim, planner and safety node as separate processes over DDS, in lockstep.

Usage::

    python -m cosmos_ros.tools.eval_closed_loop --episodes 50 [--model-path DIR] [--latency-fraction F]
        [--rows trained,random,expert] [--first-seed 1000000] [--num-inference-steps 10] [--backend fast]

Rows (each: N seeded episodes, the same seeds):

- ``trained``: the planner node with ``--model-path`` (its ``action_space.yaml`` if it has one);
- ``random``: the same action space with a random-weight tiny model (``make_tiny_model``);
- ``expert``: the scripted IK expert in the planner node's place (``expert_planner_node``), streamed through
  the same safety node: the ceiling.

Per row it prints success rate, time to success, plans, safety decisions (clamps and rejections by reason),
watchdog entries, the largest joint jerk the sim's controllers received, and the result of an independent
finite-difference check (``cosmos_ros.safety.verify``) of those controller inputs against the limits file.
``--latency-fraction F`` makes the planner hold each plan ``F`` x the chunk duration of sim time
(``emulated_latency_s``) while the simulation runs on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_ros.sim.records import load_record
from cosmos_ros.sim.switch_metrics import PlanSample, plan_jumps, setpoint_switch_stats

PLANNER_CLOCK = "/sim/planner_clock"
ROWS = ("trained", "random", "expert")
LIMITS = "config/limits/arm7_joints.yaml"
ARM_AXES = tuple(f"panda_joint{i}" for i in range(1, 8))


@dataclass
class RowResult:
    row: str
    episodes: int = 0
    successes: int = 0
    times_to_success: list[float] = field(default_factory=list)
    plans: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    watchdog_entries: int = 0
    max_jerk: float = 0.0
    violations: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    lockstep_timeouts: int = 0
    # Chunk switches (cosmos_ros.sim.switch_metrics): plan-to-plan disagreement at the switch (rad, before
    # the safety node) and the controller inputs' jerk / velocity step just after it.
    plan_jumps: list[float] = field(default_factory=list)
    switch_jerk: float = 0.0
    switch_velocity_step: float = 0.0
    wall_s: float = 0.0
    error: str = ""
    # What the peer saw, for tools that draw the episodes (tools/demo_closed_loop): every plan's arm-joint
    # targets at absolute sim times, the sim time at which the safety node took each streamed plan, and the
    # sim time at which each episode (by seed) started.
    plan_samples: list[PlanSample] = field(default_factory=list)
    switch_times: dict[int, float] = field(default_factory=dict)
    episode_starts: dict[int, float] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return 100.0 * self.successes / self.episodes if self.episodes else 0.0


def _limits_path() -> Path:
    here = Path(__file__).resolve().parent.parent
    for cand in (
        here.parent / LIMITS,
        here.parents[3] / "share" / "cosmos_ros" / LIMITS if len(here.parents) > 3 else None,
    ):
        if cand is not None and cand.is_file():
            return cand
    raise FileNotFoundError(LIMITS)


def check_records(record_dir: Path, result: RowResult, limits_file: Path | None = None) -> None:
    """Outcomes, max jerk and the independent limit check from the sim's records of controller inputs."""
    from cosmos_ros.safety import load_limits
    from cosmos_ros.safety.verify import find_violations

    limits = load_limits(limits_file or _limits_path())
    arrays = limits.column_arrays(np.inf)
    for path in sorted(record_dir.glob("episode_*.npz")):
        rec = load_record(path)
        result.episodes += 1
        if float(rec["time_to_success_s"]) >= 0:
            result.successes += 1
            result.times_to_success.append(float(rec["time_to_success_s"]))
        for reason, count in zip(rec["refusal_reasons"], rec["refusal_counts"], strict=True):
            result.refusals[str(reason)] += int(count)
        result.lockstep_timeouts += int(rec["lockstep_timeouts"])
        sp, dt = rec["setpoints"], float(rec["tick_s"])
        if len(sp) >= 4:
            jerk = np.diff(sp[:, :7], n=3, axis=0) / dt**3
            result.max_jerk = max(result.max_jerk, float(np.max(np.abs(jerk))))
        switch_ticks = rec.get("switch_ticks", np.zeros(0, dtype=np.int64))
        s_jerk, s_dv = setpoint_switch_stats(sp[:, :7], dt, [int(k) for k in switch_ticks])
        result.switch_jerk = max(result.switch_jerk, s_jerk)
        result.switch_velocity_step = max(result.switch_velocity_step, s_dv)
        result.violations += len(
            find_violations(
                sp,
                dt,
                min_position=arrays["min_position"],
                max_position=arrays["max_position"],
                max_velocity=arrays["max_velocity"],
                max_acceleration=arrays["max_acceleration"],
                max_jerk=arrays["max_jerk"],
                from_rest=True,
                rtol=1e-6,
            )
        )


def plan_sample(msg: Any, axes: Sequence[str] = ARM_AXES) -> PlanSample | None:
    """An ``ActionSequence``'s arm-joint positions at their absolute times (None if it lacks the axes)."""
    from cosmos_ros.nodes.conversions import msg_to_plan

    try:
        plan = msg_to_plan(msg)
    except ValueError:
        return None
    if any(a not in plan.axis_names for a in axes):
        return None
    cols = [plan.axis_names.index(a) for a in axes]
    times = np.array([plan.step_time(k) for k in range(len(plan.values))])
    return PlanSample(plan.plan_id, plan.goal, times, plan.values[:, cols])


def count_plan_jumps(plans: Sequence[Any], statuses: Sequence[Any], result: RowResult) -> None:
    """Plan-to-plan disagreement at each switch; switch time = stamp of the safety node's decision."""
    from cosmos_ros.msg import SafetyStatus
    from cosmos_ros.nodes.conversions import time_to_sec

    streamed = (SafetyStatus.DECISION_ACCEPTED, SafetyStatus.DECISION_CLAMPED)
    switch_times = {
        int(s.plan_id): time_to_sec(s.header.stamp)
        for s in statuses
        if s.plan_id > 0 and int(s.decision) in streamed
    }
    samples = [p for p in (plan_sample(m) for m in plans) if p is not None]
    result.plan_jumps.extend(plan_jumps(samples, switch_times))
    result.plan_samples.extend(samples)
    result.switch_times.update(switch_times)


def episode_starts(episodes: Sequence[Any]) -> dict[int, float]:
    """Seed -> sim time (s) of episode time 0, from ``SimEpisode`` messages of the running phase or later."""
    from cosmos_ros.nodes.conversions import time_to_sec

    return {
        int(m.seed): time_to_sec(m.start_time)
        for m in episodes
        if int(m.phase) >= 1  # SimEpisode.PHASE_RUNNING: start_time is this episode's (not the previous)
    }


def count_statuses(statuses: Sequence[Any], result: RowResult) -> None:
    """Plans, decisions by kind and reason, and watchdog entries from the safety node's status messages."""
    names = {1: "accepted", 2: "clamped", 3: "rejected"}
    streaming = False
    for s in statuses:
        if s.plan_id > 0:
            result.plans += 1
            kind = names.get(int(s.decision), "other")
            result.decisions[kind] += 1
            for reason in s.reasons:
                result.reasons[f"{kind}:{reason}"] += 1
        # An entry is the watchdog taking over from a plan (streaming -> holding/decelerating); the HOLDING
        # of a soft start before the first plan is not one.
        if s.watchdog_active and streaming:
            result.watchdog_entries += 1
        streaming = int(s.output_state) == 1  # SafetyStatus.OUTPUT_STREAMING


def run_row(
    row: str,
    episodes: int,
    first_seed: int,
    model_path: str,
    action_space: str,
    latency_s: float,
    num_inference_steps: int,
    work: Path,
    domain_id: int,
    plan_rate_hz: float = 1.0,
    timeout_per_episode_s: float = 1800.0,
    planner_overrides: dict[str, Any] | None = None,
    limits_file: str | Path | None = None,
) -> RowResult:
    """Start safety + planner (or expert) + sim, run the episodes, collect and check the results.

    ``limits_file``: the safety node's limits (default ``config/limits/arm7_joints.yaml``); the independent
    check of the controller inputs uses the same file.
    """
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from cosmos_ros.msg import ActionSequence, SafetyStatus, SimEpisode
    from cosmos_ros.testing.ros_harness import NodeProcess, TestPeer, wait_active

    result = RowResult(row)
    limits = Path(limits_file) if limits_file else _limits_path()
    record_dir = work / f"records_{row}"
    safety = NodeProcess(
        "cosmos_ros.nodes.safety_node",
        domain_id,
        params={
            "use_sim_time": True,
            "limits_file": str(limits),
            "output_adapters": ["float64_per_axis", "float64_multi_array"],
        },
    )
    planner_params: dict[str, Any] = {
        "use_sim_time": True,
        "model_path": model_path if row != "expert" else "scripted_expert",
        "action_space": action_space,
        "camera_topics": ["image_raw"],
        "publish_state": True,
        "emulated_latency_s": latency_s,
        "max_plan_rate_hz": 100.0,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": 1.0,
        "seed": 0,
    }
    planner_params.update(planner_overrides or {})  # e.g. the real-time schedules of tools/eval_rtc
    module = "cosmos_ros.nodes.expert_planner_node" if row == "expert" else "cosmos_ros.nodes.planner_node"
    planner = NodeProcess(module, domain_id, params=planner_params, remaps={"/clock": PLANNER_CLOCK})
    sim = NodeProcess(
        "cosmos_ros.nodes.sim_node",
        domain_id,
        params={
            "first_seed": first_seed,
            "num_episodes": episodes,
            "lockstep": True,
            "planner_clock_topic": PLANNER_CLOCK,
            "record_dir": str(record_dir),
            "exit_when_done": True,
            "camera_rate_hz": plan_rate_hz,
            # A plan may take minutes on a loaded CPU; lockstep waits for it (sim time stands still).
            "lockstep_timeout_s": 900.0,
        },
    )
    t0 = time.monotonic()
    with TestPeer(domain_id, name=f"eval_{row}") as peer:
        statuses = peer.record(SafetyStatus, "/safety_status", 100)
        plan_msgs = peer.record(ActionSequence, "/action_sequence", 100)
        latched = QoSProfile(
            depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        episode_msgs = peer.record(SimEpisode, "/sim_episode", latched)
        with safety, planner:
            if not (wait_active(peer, "safety_node", 120) and wait_active(peer, "planner_node", 300)):
                result.error = (
                    "nodes did not become active:\n" + safety.output()[-2000:] + planner.output()[-3000:]
                )
                return result
            with sim:
                code = sim.wait_exit(timeout_per_episode_s * episodes)
                if code != 0:
                    result.error = f"sim exited with {code}:\n{sim.output()[-3000:]}"
            time.sleep(0.5)  # the last statuses are in flight
        count_statuses(statuses.messages, result)
        count_plan_jumps(plan_msgs.messages, statuses.messages, result)
        result.episode_starts = episode_starts(episode_msgs.messages)
    check_records(record_dir, result, limits)
    result.wall_s = time.monotonic() - t0
    return result


def format_table(results: Sequence[RowResult]) -> str:
    head = (
        f"{'row':<8} {'episodes':>8} {'success':>8} {'t_success s':>12} {'plans':>6} {'clamped':>8} "
        f"{'rejected':>8} {'watchdog':>8} {'max jerk':>10} {'violations':>10} {'refused':>7} {'timeouts':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        t = f"{statistics.median(r.times_to_success):.2f}" if r.times_to_success else "-"
        lines.append(
            f"{r.row:<8} {r.episodes:>8} {r.success_rate:>7.1f}% {t:>12} {r.plans:>6} "
            f"{r.decisions['clamped']:>8} "
            f"{r.decisions['rejected']:>8} {r.watchdog_entries:>8} {r.max_jerk:>10.1f} {r.violations:>10} "
            f"{sum(r.refusals.values()):>7} {r.lockstep_timeouts:>8}"
        )
    lines.append(
        "t_success: median sim seconds to success; max jerk: rad/s^3 of the controller inputs (finite"
    )
    lines.append("differences); violations: cosmos_ros.safety.verify against config/limits/arm7_joints.yaml.")
    for r in results:
        if r.reasons:
            lines.append(
                f"{r.row} decision reasons: " + ", ".join(f"{k}={v}" for k, v in sorted(r.reasons.items()))
            )
        if r.refusals:
            lines.append(
                f"{r.row} sim refusals: " + ", ".join(f"{k}={v}" for k, v in sorted(r.refusals.items()))
            )
        if r.error:
            lines.append(f"{r.row} ERROR: {r.error}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=1_000_000, help="evaluation seeds (demos use 0..)")
    p.add_argument("--model-path", default="", help="trained pipeline directory (row 'trained')")
    p.add_argument("--action-space", default="", help="profile; default: <model-path>/action_space.yaml")
    p.add_argument("--rows", default="", help=f"comma-separated subset of {','.join(ROWS)}")
    p.add_argument("--latency-fraction", type=float, default=0.0, help="emulated latency / chunk duration")
    p.add_argument("--chunk-duration", type=float, default=16 / 15, help="s (chunk 16 at 15 Hz)")
    p.add_argument("--num-inference-steps", type=int, default=10)
    p.add_argument("--backend", default="", help="planner backend (diffusers | fast; default: the node's)")
    p.add_argument("--plan-rate-hz", type=float, default=1.0, help="camera frames (plans) per sim second")
    p.add_argument("--work-dir", default="", help="keep records here (default: a temporary directory)")
    p.add_argument(
        "--domain-id",
        type=int,
        default=None,
        help="ROS domain of the run (default: from the pid, 1..100; give another so that concurrent test "
        "processes, which draw from 1..100, cannot join it)",
    )
    p.add_argument("--json", default="", help="also write the results as JSON here")
    return p


def row_domain(given: int | None, row_index: int) -> int:
    """Row ``row_index``'s domain: ``given + row_index`` when given, else one from the pid (1..100)."""
    from cosmos_ros.testing.ros_harness import pick_domain_id

    if given is None:
        return (pick_domain_id() + row_index - 1) % 100 + 1
    return given + row_index


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.domain_id is not None and not 0 <= args.domain_id <= 200:
        print(f"--domain-id must be in 0..200 (Fast DDS port mapping), got {args.domain_id}", file=sys.stderr)
        return 2
    rows = [r for r in args.rows.split(",") if r] or [r for r in ROWS if r != "trained" or args.model_path]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or ("trained" in rows and not args.model_path):
        print(f"rows must be from {ROWS}; 'trained' needs --model-path (got {rows})", file=sys.stderr)
        return 2
    action_space = args.action_space
    if not action_space:
        own = Path(args.model_path) / "action_space.yaml" if args.model_path else None
        action_space = str(own) if own is not None and own.is_file() else "arm7_joints"
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="eval_closed_loop_"))
    work.mkdir(parents=True, exist_ok=True)
    latency = args.latency_fraction * args.chunk_duration
    results = []
    for i, row in enumerate(rows):
        model = args.model_path
        if row == "random":
            from cosmos_ros.tools.make_tiny_model import main as make_tiny

            model = str(work / "tiny_random")
            if not (Path(model) / "model_index.json").is_file():
                make_tiny(["--out", model, "--seed", "0"])
        print(f"[eval] {row}: {args.episodes} episodes from seed {args.first_seed} ...", flush=True)
        result = run_row(
            row, args.episodes, args.first_seed, model, action_space, latency, args.num_inference_steps,
            work, row_domain(args.domain_id, i), plan_rate_hz=args.plan_rate_hz,
            planner_overrides={"backend": args.backend} if args.backend and row != "expert" else None,
        )  # fmt: skip
        print(f"[eval] {row}: {result.success_rate:.1f}% in {result.wall_s:.0f} s wall", flush=True)
        results.append(result)
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps([_as_json(r) for r in results], indent=2))
    return 0 if all(not r.error for r in results) else 1


def _as_json(r: RowResult) -> dict[str, Any]:
    return {
        "row": r.row,
        "episodes": r.episodes,
        "success_rate": r.success_rate,
        "times_to_success": r.times_to_success,
        "plans": r.plans,
        "decisions": dict(r.decisions),
        "reasons": dict(r.reasons),
        "watchdog_entries": r.watchdog_entries,
        "max_jerk": r.max_jerk,
        "violations": r.violations,
        "refusals": dict(r.refusals),
        "lockstep_timeouts": r.lockstep_timeouts,
        "plan_jumps": r.plan_jumps,
        "switch_jerk": r.switch_jerk,
        "switch_velocity_step": r.switch_velocity_step,
        "wall_s": r.wall_s,
        "error": r.error,
    }


if __name__ == "__main__":
    sys.exit(main())
