"""The demo: a bag replayed into planner -> safety -> controller topics, recorded, summarised and plotted.

    python -m cosmos_ros.tools.demo        # tiny random model (generated), demo bag (generated)
    python -m cosmos_ros.tools.demo --model-path /models/Cosmos3-Nano --device cuda --bag my_bag

What runs: the planner node and the safety node as two real processes over DDS (the same executables
`ros2 launch cosmos_ros planner.launch.py` starts), fed by the replay tool with the bag's camera, goal and
joint-state topics and its clock in lockstep (``cosmos_ros.testing.node_replay``: the nodes use sim time, the
clock pauses while the model plans, so the run is the same on any CPU or GPU); the replay tool records
`action_sequence`, `safety_status` and the controller topic to a new mcap bag. Then this prints a summary and
writes a PNG of planned versus streamed setpoints per axis.

The default model is a tiny random-weight Cosmos 3 pipeline: its actions are noise. The demo shows the
plumbing (conversion, inference, checking, clamping, streaming), not planning quality.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
COMMANDS_TOPIC = "/forward_position_controller/commands"


@dataclass
class DemoResult:
    """What the demo saw, read back from the recorded bag (times in seconds of the bag's clock)."""

    axis_names: tuple[str, ...]
    plans: list[dict] = field(default_factory=list)  # plan_id, t0, dt, values [T, D], inference_time_s
    statuses: list[dict] = field(default_factory=list)  # plan_id, decision, reasons, max_correction, t
    setpoints: list[tuple[float, np.ndarray]] = field(default_factory=list)

    def summary(self) -> dict:
        decisions = Counter(s["decision"] for s in self.statuses if s["plan_id"] > 0)
        reasons = Counter(r for s in self.statuses if s["plan_id"] > 0 for r in s["reasons"])
        inference = [p["inference_time_s"] for p in self.plans]
        # No capture-to-decision latency here: in lockstep the bag clock pauses while the model plans, so it
        # would read ~0. The inference time is wall time, measured by the planner.
        return {
            "plans": len(self.plans),
            "accepted": decisions.get("accepted", 0),
            "clamped": decisions.get("clamped", 0),
            "rejected": decisions.get("rejected", 0),
            "reasons": dict(reasons),
            "setpoints_sent": len(self.setpoints),
            "inference_time_s_median": float(np.median(inference)) if inference else None,
        }


def _decision_name(code: int) -> str:
    return {1: "accepted", 2: "clamped", 3: "rejected"}.get(code, "none")


def read_recording(bag_path: Path) -> DemoResult:
    """Deserialize the recorded topics (rclpy's CDR, the same code the nodes use)."""
    from rclpy.serialization import deserialize_message
    from std_msgs.msg import Float64MultiArray

    from cosmos_ros.msg import ActionSequence, SafetyStatus
    from cosmos_ros.nodes.conversions import msg_to_plan, time_to_sec
    from cosmos_ros.replay.bag import Bag

    result = DemoResult(axis_names=())
    with Bag(bag_path) as bag:
        for m in bag.messages():
            t = m.time_ns * 1e-9
            if m.topic.endswith("action_sequence"):
                plan = msg_to_plan(deserialize_message(m.data, ActionSequence))
                result.axis_names = plan.axis_names
                result.plans.append(
                    {
                        "plan_id": plan.plan_id,
                        "stamp": plan.stamp_s,
                        "t0": plan.t0_s,
                        "dt": plan.step_period_s,
                        "values": plan.values,
                        "inference_time_s": plan.inference_time_s,
                    }
                )
            elif m.topic.endswith("safety_status"):
                s = deserialize_message(m.data, SafetyStatus)
                result.statuses.append(
                    {
                        "plan_id": int(s.plan_id),
                        "decision": _decision_name(s.decision),
                        "reasons": list(s.reasons),
                        "max_correction": dict(zip(s.axis_names, s.max_correction, strict=False)),
                        "t": time_to_sec(s.header.stamp) if s.header.stamp.sec else t,
                    }
                )
            elif m.topic == COMMANDS_TOPIC:
                result.setpoints.append((t, np.asarray(deserialize_message(m.data, Float64MultiArray).data)))
    return result


def plot(result: DemoResult, limits_path: Path, out_png: Path) -> None:
    """Planned (dashed, one line per plan) versus streamed (solid) setpoints per axis; clamps marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cosmos_ros.safety.limits import load_limits

    limits = {a.name: a for a in load_limits(limits_path).axes}
    names = result.axis_names or tuple(limits)
    t_ref = min([p["stamp"] for p in result.plans] + [t for t, _ in result.setpoints] or [0.0])
    ncols = 2
    nrows = (len(names) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, 2.2 * nrows), sharex=True, squeeze=False)
    sp_t = np.array([t for t, _ in result.setpoints]) - t_ref
    sp_v = np.array([v for _, v in result.setpoints]) if result.setpoints else np.zeros((0, len(names)))
    clamped_ids = {s["plan_id"] for s in result.statuses if s["decision"] == "clamped"}
    rejected_ids = {s["plan_id"] for s in result.statuses if s["decision"] == "rejected"}
    for i, name in enumerate(names):
        ax = axes[i // ncols][i % ncols]
        lim = limits.get(name)
        for p in result.plans:
            t = p["t0"] - t_ref + p["dt"] * np.arange(len(p["values"]))
            style = ":" if p["plan_id"] in rejected_ids else "--"
            ax.plot(t, p["values"][:, i], style, lw=0.8, color="tab:blue", alpha=0.6)
            if lim is not None and p["plan_id"] in clamped_ids:
                lo = -np.inf if lim.min_position is None else lim.min_position
                hi = np.inf if lim.max_position is None else lim.max_position
                out = (p["values"][:, i] < lo) | (p["values"][:, i] > hi)
                ax.plot(t[out], p["values"][out, i], "x", color="tab:red", ms=4)
        if len(sp_t) and sp_v.shape[1] > i:
            ax.plot(sp_t, sp_v[:, i], "-", lw=1.4, color="black")
        if lim is not None:
            for bound in (lim.min_position, lim.max_position):
                if bound is not None:
                    ax.axhline(bound, color="tab:red", lw=0.6, alpha=0.5)
            if lim.min_position is not None and lim.max_position is not None:
                pad = 0.25 * (lim.max_position - lim.min_position)
                ax.set_ylim(lim.min_position - pad, lim.max_position + pad)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for j in range(len(names), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    fig.suptitle(
        "cosmos_ros demo: planned (dashed blue; dotted = rejected plan), streamed setpoints (black), "
        "position bounds (red lines), planned points outside bounds (red x)\n"
        "tiny RANDOM model: shows the plumbing, not planning quality",
        fontsize=9,
    )
    for ax in axes[-1]:
        ax.set_xlabel("time since first plan's frame (s, bag clock)", fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def run_demo(args: argparse.Namespace) -> dict:
    from ament_index_python.packages import get_package_share_directory

    from cosmos_ros.testing.node_replay import NodeReplayConfig, replay_into_nodes

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    share = Path(get_package_share_directory("cosmos_ros"))
    limits_path = Path(args.limits_file) if args.limits_file else share / "config/limits/arm7_joints.yaml"

    model = args.model_path
    if not model:
        from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline

        model_dir = out / "tiny_model"
        if not (model_dir / "model_index.json").exists():
            print(f"[demo] generating the tiny random-weight Cosmos 3 pipeline in {model_dir}")
            make_tiny_pipeline(model_dir, seed=0)
        model = str(model_dir)
    bag = Path(args.bag) if args.bag else out / "demo_bag"
    if not args.bag and not bag.exists():
        from cosmos_ros.tools.make_demo_bag import make_demo_bag

        print(f"[demo] generating the demo bag in {bag}")
        make_demo_bag(bag)

    print(f"[demo] replaying {bag} into planner_node and safety_node (model {model}), recording outputs")
    # Lockstep (cosmos_ros.testing.node_replay): the bag clock pauses while the model plans and then steps on
    # the control grid, so the result is the same on a slow CPU and a fast GPU.
    config = NodeReplayConfig(
        bag=bag,
        planner_params={
            "model_path": model,
            "action_space": args.action_space,
            "backend": args.backend,
            "device": args.device,
            "dtype": args.dtype,
            "num_inference_steps": args.steps,
            "camera_topics": [args.camera_topic],
            "goal_topic": "goal",
        },
        safety_params={"limits_file": str(limits_path), "measured_state_topic": "joint_states"},
        topics=(args.camera_topic, "/goal", "/joint_states"),
        record_topics=(
            "/action_sequence:cosmos_ros/msg/ActionSequence",
            "/safety_status:cosmos_ros/msg/SafetyStatus",
            f"{COMMANDS_TOPIC}:std_msgs/msg/Float64MultiArray",
        ),
        out_dir=out,
        camera_topic=args.camera_topic,
        frame_interval_s=args.frame_interval,
        linger_s=args.linger,
        planner_params_files=(share / "config/planner.yaml",),
        safety_params_files=(share / "config/safety.yaml",),
        startup_timeout_s=args.startup_timeout,
    )
    recording = replay_into_nodes(config)
    result = read_recording(recording)
    summary = result.summary()
    png = out / "demo_setpoints.png"
    plot(result, limits_path, png)
    summary["plot"] = str(png)
    summary["recording"] = str(recording)
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="artifacts/demo", help="output directory (model, bag, recording, plot)")
    p.add_argument(
        "--model-path", default="", help="Cosmos 3 pipeline dir; empty: generate the tiny random one"
    )
    p.add_argument("--bag", default="", help="input bag; empty: generate the demo bag")
    p.add_argument("--camera-topic", default="/camera/image_raw")
    p.add_argument("--action-space", default="arm7_joints")
    p.add_argument("--limits-file", default="", help="default: the package's config/limits/arm7_joints.yaml")
    p.add_argument("--backend", default="fast", choices=("diffusers", "fast", "tensorrt"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--steps", type=int, default=8, help="denoising steps")
    p.add_argument(
        "--frame-interval",
        type=float,
        default=0.25,
        help="plan on one camera frame per this many bag seconds",
    )
    p.add_argument("--linger", type=float, default=1.5, help="bag seconds streamed after the last message")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    args = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        summary = run_demo(args)
    except Exception as exc:  # the demo is a user-facing command: one clear line, exit 1
        print(f"[demo] FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("\n[demo] summary (tiny random model: plumbing, not planning quality)")
    for k, v in summary.items():
        print(f"  {k:32s} {v}")
    print(f"[demo] done in {time.monotonic() - t0:.1f} s")
    return 0 if summary["plans"] > 0 and summary["setpoints_sent"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
