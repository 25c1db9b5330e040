"""Soak: the closed loop (sim node, safety node, planner) running free for a long time, one row per interval.

Usage::

    python -m cosmos_ros.tools.soak --duration-s 600 [--interval-s 60] [--camera-hz 30] [--planner tiny]

The sim node runs in free-run mode (``lockstep: false``, real time) with a camera at ``--camera-hz``, episodes
back to back (the safety node is re-activated between episodes by the sim). The planner (``--planner``):

- ``expert`` (default): the scripted expert (``expert_planner_node``: the whole planner node with an IK
  "model", so frames, worker, plans and diagnostics are the real ones, at a plan rate the plumbing sets);
- ``tiny``: the planner node itself running the committed trained tiny Cosmos 3 policy
  (``cosmos_ros/models/panda_touch_tiny``, fast backend): the model's allocations are soaked too.

Per interval it prints:

- resident memory (VmRSS, MiB) of each of the three processes;
- frames: published by the sim (its ``camera_info``, one per frame), received by the planner, frame sets the
  planner dropped (latest-only worker: a newer set replaced one not yet taken); the planner's own queue is one
  pending set by design, DDS queues are bounded by their QoS depth and not observable from outside, so a
  growing gap between published and received-or-dropped frames is what a growing queue would look like;
- the safety node's tick intervals (wall clock): median of its 1-s window p50s, largest window p99, largest
  interval;
- plan latency: the planner's own p95 and max (frame stamp to plan published, its diagnostics), and plans
  received by the monitor in the interval.

The first interval is warm-up. ``summary()`` gives memory growth after warm-up per process and the frame gap
trend, which ``test/test_soak.py`` bounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROCS = ("sim", "safety", "planner")


@dataclass
class Row:
    minute: float
    rss_mib: dict[str, float]
    frames_published: int
    frames_received: int
    frame_sets_dropped: int
    tick_p50_ms: float
    tick_p99_ms: float
    tick_max_ms: float
    plan_latency_p95_s: float
    plan_latency_max_s: float
    plans: int
    sim_time_s: float


@dataclass
class _Monitor:
    """Diagnostics and counters from the three processes (filled by subscription callbacks)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    safety_windows: list[dict[str, str]] = field(default_factory=list)
    planner: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    plans: int = 0
    clock_s: float = 0.0
    goal: str = ""

    def on_diag(self, msg: Any) -> None:
        with self.lock:
            for st in msg.status:
                values = {kv.key: kv.value for kv in st.values}
                if st.name.endswith(": safety"):
                    self.safety_windows.append(values)
                elif "latency_p95_s" in values:
                    self.planner = values

    def on_frame(self, msg: Any) -> None:
        with self.lock:
            self.frames += 1

    def on_plan(self, msg: Any) -> None:
        with self.lock:
            self.plans += 1

    def on_episode(self, msg: Any) -> None:
        with self.lock:
            self.goal = msg.goal

    def on_clock(self, msg: Any) -> None:
        self.clock_s = msg.clock.sec + msg.clock.nanosec * 1e-9


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (Linux ``/proc``); NaN if it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _f(values: dict[str, str], key: str) -> float:
    try:
        return float(values.get(key, "nan"))
    except ValueError:
        return float("nan")


def _row(minute: float, mon: _Monitor, pids: dict[str, int], last: dict[str, int]) -> Row:
    with mon.lock:
        windows, mon.safety_windows = mon.safety_windows, []
        planner, frames, plans = dict(mon.planner), mon.frames, mon.plans
    p50 = [_f(w, "tick_interval_p50_ms") for w in windows]
    p99 = [_f(w, "tick_interval_p99_ms") for w in windows]
    mx = [_f(w, "tick_interval_max_ms") for w in windows]
    row = Row(
        minute=minute,
        rss_mib={n: rss_mib(pid) for n, pid in pids.items()},
        frames_published=frames,
        frames_received=int(_f(planner, "frames_received")) if planner else 0,
        frame_sets_dropped=int(_f(planner, "frame_sets_dropped")) if planner else 0,
        tick_p50_ms=statistics.median(p50) if p50 else float("nan"),
        tick_p99_ms=max(p99) if p99 else float("nan"),
        tick_max_ms=max(mx) if mx else float("nan"),
        plan_latency_p95_s=_f(planner, "latency_p95_s"),
        plan_latency_max_s=_f(planner, "latency_max_s"),
        plans=plans - last.get("plans", 0),
        sim_time_s=mon.clock_s,
    )
    last["plans"] = plans
    return row


def format_rows(rows: Sequence[Row]) -> str:
    head = (
        f"{'min':>5} {'sim s':>7} " + " ".join(f"{'rss ' + n + ' MiB':>16}" for n in PROCS)
        + f" {'frames pub':>10} {'recv':>7} {'dropped':>7} {'gap':>5} {'tick p50 ms':>11} {'p99 ms':>7}"
        f" {'max ms':>7} {'plan lat p95 s':>14} {'max s':>6} {'plans':>6}"
    )  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:
        gap = r.frames_published - r.frames_received
        lines.append(
            f"{r.minute:>5.1f} {r.sim_time_s:>7.1f} "
            + " ".join(f"{r.rss_mib.get(n, float('nan')):>16.1f}" for n in PROCS)
            + f" {r.frames_published:>10} {r.frames_received:>7} {r.frame_sets_dropped:>7} {gap:>5}"
            f" {r.tick_p50_ms:>11.3f} {r.tick_p99_ms:>7.3f} {r.tick_max_ms:>7.3f}"
            f" {r.plan_latency_p95_s:>14.4f} {r.plan_latency_max_s:>6.3f} {r.plans:>6}"
        )  # fmt: skip
    return "\n".join(lines)


def summary(rows: Sequence[Row]) -> dict[str, float]:
    """Memory growth after warm-up (MiB, last row minus the first after warm-up) per process, the change of
    the frame gap (published - received) over the same span, and the tick p50/p99 trend (ms per interval)."""
    if len(rows) < 3:
        raise ValueError(f"need at least 3 rows (one warm-up), got {len(rows)}")
    base, end = rows[1], rows[-1]
    out = {f"rss_growth_{n}_mib": end.rss_mib[n] - base.rss_mib[n] for n in PROCS}
    out["frame_gap_change"] = float(
        (end.frames_published - end.frames_received) - (base.frames_published - base.frames_received)
    )
    # Jitter is "flat" when its per-interval percentiles have no trend: least-squares slope after warm-up.
    for name in ("tick_p50_ms", "tick_p99_ms"):
        out[f"{name}_slope_per_interval"] = _slope([getattr(r, name) for r in rows[1:]])
    return out


def _slope(values: Sequence[float]) -> float:
    n = len(values)
    mx, my = (n - 1) / 2.0, statistics.fmean(values)
    return sum((i - mx) * (v - my) for i, v in enumerate(values)) / sum((i - mx) ** 2 for i in range(n))


PLANNERS = ("expert", "tiny")


def _planner_process(kind: str, domain_id: int) -> Any:
    from cosmos_ros.models import PANDA_TOUCH_TINY, profile_path
    from cosmos_ros.testing.ros_harness import NodeProcess

    common: dict[str, Any] = {"use_sim_time": True, "camera_topics": ["image_raw"], "seed": 0}
    if kind == "expert":
        expert = {"model_path": "scripted_expert", "action_space": "arm7_joints"}
        return NodeProcess("cosmos_ros.nodes.expert_planner_node", domain_id, params={**common, **expert})
    params: dict[str, Any] = {
        "model_path": str(PANDA_TOUCH_TINY),
        "action_space": str(profile_path(PANDA_TOUCH_TINY)),
        "backend": "fast",
        "num_inference_steps": 10,
        "guidance_scale": 1.0,
    }
    return NodeProcess("cosmos_ros.nodes.planner_node", domain_id, params={**common, **params})


def run(
    duration_s: float, interval_s: float, camera_hz: float, domain_id: int, planner_kind: str = "expert"
) -> list[Row]:
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import String

    from cosmos_ros.msg import ActionSequence, SimEpisode
    from cosmos_ros.testing.ros_harness import NodeProcess, TestPeer, wait_active
    from cosmos_ros.tools.eval_closed_loop import _limits_path

    safety = NodeProcess(
        "cosmos_ros.nodes.safety_node", domain_id,
        params={"use_sim_time": True, "limits_file": str(_limits_path()),
                "output_adapters": ["float64_per_axis", "float64_multi_array"]},
    )  # fmt: skip
    if planner_kind not in PLANNERS:
        raise ValueError(f"planner must be one of {PLANNERS}, got {planner_kind!r}")
    planner = _planner_process(planner_kind, domain_id)
    sim = NodeProcess(
        "cosmos_ros.nodes.sim_node", domain_id,
        params={"lockstep": False, "real_time_factor": 1.0, "num_episodes": 0, "camera_rate_hz": camera_hz},
    )  # fmt: skip
    latched = QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    mon = _Monitor()
    rows: list[Row] = []
    with TestPeer(domain_id, name="soak_monitor") as peer, safety, planner:
        peer.node.create_subscription(DiagnosticArray, "/diagnostics", mon.on_diag, 100)
        peer.node.create_subscription(CameraInfo, "/camera_info", mon.on_frame, 100)
        peer.node.create_subscription(ActionSequence, "/action_sequence", mon.on_plan, 100)
        peer.node.create_subscription(Clock, "/clock", mon.on_clock, 10)
        peer.node.create_subscription(SimEpisode, "/sim_episode", mon.on_episode, latched)
        goal_pub = peer.publisher(String, "/goal", latched)

        def resend_goal() -> None:
            # Free-run, the sim publishes each episode's goal once; the expert ignores a goal that arrives
            # before it knows the episode (it acknowledges only in lockstep, where the sim re-sends). Re-sent
            # like an operator would; the same goal again changes nothing in the planner.
            with mon.lock:
                goal = mon.goal
            if goal:
                goal_pub.publish(String(data=goal))

        peer.node.create_timer(1.0, resend_goal)
        if not (wait_active(peer, "safety_node", 120) and wait_active(peer, "planner_node", 300)):
            raise RuntimeError("nodes not active:\n" + safety.output()[-2000:] + planner.output()[-2000:])
        with sim:
            assert safety.proc and planner.proc and sim.proc
            pids = {"sim": sim.proc.pid, "safety": safety.proc.pid, "planner": planner.proc.pid}
            t0 = time.monotonic()
            last: dict[str, int] = {}
            for i in range(1, round(duration_s / interval_s) + 1):
                time.sleep(max(0.0, t0 + i * interval_s - time.monotonic()))  # the sampling period itself
                if not (sim.alive() and safety.alive() and planner.alive()):
                    raise RuntimeError("a process ended:\n" + sim.output()[-2000:] + safety.output()[-2000:])
                rows.append(_row(i * interval_s / 60.0, mon, pids, last))
                print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration-s", type=float, default=600.0)
    p.add_argument("--interval-s", type=float, default=60.0)
    p.add_argument("--camera-hz", type=float, default=30.0)
    p.add_argument("--planner", choices=PLANNERS, default="expert", help="scripted expert or the tiny model")
    args = p.parse_args(argv)
    if not (args.duration_s >= 3 * args.interval_s > 0):
        print("--duration-s must be at least 3 x --interval-s (> 0)", file=sys.stderr)
        return 2
    from cosmos_ros.testing.ros_harness import pick_domain_id

    print(format_rows([]).splitlines()[0], flush=True)
    rows = run(args.duration_s, args.interval_s, args.camera_hz, pick_domain_id(), args.planner)
    print(format_rows(rows))
    print(
        "after warm-up (row 2 to the last): " + ", ".join(f"{k} {v:+.1f}" for k, v in summary(rows).items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
