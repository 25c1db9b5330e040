"""The closed-loop demo: seeded episodes of the simulated Panda, a trained policy driving it via the nodes.

    python -m cosmos_ros.tools.demo_closed_loop                           # committed tiny policy, seeds 1-3
    python -m cosmos_ros.tools.demo_closed_loop --first-seed 2 --episodes 1 --model-path /tmp/my_policy
    python -m cosmos_ros.tools.demo_closed_loop --row expert              # the scripted IK expert instead

What runs: ``cosmos_ros.tools.eval_closed_loop.run_row``: the sim node, the planner node (the trained
pipeline through ``PolicyRuntime``; or the scripted expert) and the safety node as three processes over DDS,
in lockstep on ``/clock`` (the simulation pauses while the model plans, so the outcome does not depend on CPU
speed). Then it prints the success summary table and writes, per episode, into ``--out``:

- ``episode_<seed>.gif``: the camera view re-rendered from the sim's record (``cosmos_ros.sim.episode_video``
  says how and what that cannot show) with the current plan's grasp-point path and the grasp point's trail;
- ``episode_<seed>_setpoints.png``: per joint, the setpoints the sim's PID controllers received (after the
  safety node) and the measured positions, the plans' targets, and the ticks at which a new plan took over.

The default model, ``cosmos_ros/models/panda_touch_tiny``, was trained on seeds 0-2499 and 100,000-109,999
(minus the held-out episodes its ``training.json`` lists). The default seeds (1,000,000 on, the evaluation
seeds of ``eval_closed_loop``) were never trained on; there it succeeds in about three of four episodes
(README, "Closed-loop simulation").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_ros.sim.episode_video import (
    EpisodePlan,
    VideoConfig,
    plans_for_episode,
    render_episode,
    write_gif,
)
from cosmos_ros.sim.records import load_record

ROWS = ("trained", "random", "expert")


def plot_setpoints(
    record: Mapping[str, np.ndarray], plans: Sequence[EpisodePlan], out_png: Path, label: str
) -> Path:
    """Commanded (controller input) vs measured per joint; plan targets dashed; plan switches dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(n) for n in record["joint_names"]]
    sp, meas = np.asarray(record["setpoints"]), np.asarray(record["measured"])
    tick_s = float(record["tick_s"])
    t = np.arange(len(sp)) * tick_s
    switches = [int(k) for k in record.get("switch_ticks", np.zeros(0, dtype=np.int64))]
    ncols = 2
    nrows = (len(names) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(11, 2.0 * nrows), sharex=True, squeeze=False)
    for i, name in enumerate(names):
        ax = axes[i // ncols][i % ncols]
        for k in switches:
            ax.axvline(k * tick_s, color="0.6", lw=0.7, ls=":")
        if i < 7:
            for plan in plans:
                ax.plot(plan.times_s, plan.values[:, i], "--", color="tab:orange", lw=0.8, alpha=0.8)
        ax.plot(t, sp[:, i], "-", color="black", lw=1.3, label="commanded (controller input)")
        ax.plot(t, meas[:, i], "-", color="tab:blue", lw=1.0, alpha=0.8, label="measured")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0.0, max(float(t[-1]) if len(t) else 0.0, 0.1))  # plans reach past the episode's end
    for j in range(len(names), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    axes[0][0].legend(fontsize=7, loc="best")
    t_success = float(record["time_to_success_s"])
    outcome = f"success at {t_success:.2f} s" if t_success >= 0 else "no success"
    fig.suptitle(
        f"{label}: seed {int(record['seed'])}, '{record['goal']}', {outcome}\n"
        "black: setpoints the PID controllers received (after the safety node), blue: measured, "
        "orange dashed: plan targets, dotted: plan switches",
        fontsize=9,
    )
    for ax in axes[-1]:
        ax.set_xlabel("episode time (s, sim)", fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


def episode_media(result: Any, record_dir: Path, out: Path, video: VideoConfig, label: str) -> list[dict]:
    """GIF + setpoint PNG for each record of a row; returns one summary dict per episode."""
    from cosmos_ros.sim.config import load_sim_config

    sim_config = load_sim_config()
    rows = []
    for path in sorted(record_dir.glob("episode_*.npz")):
        rec = load_record(path)
        seed = int(rec["seed"])
        start = result.episode_starts.get(seed)
        plans = (
            plans_for_episode(
                result.plan_samples, result.switch_times, start, float(rec["tick_s"]), len(rec["measured"])
            )
            if start is not None
            else []
        )
        frames = render_episode(rec, plans, sim_config, video)
        gif = write_gif(frames, out / f"episode_{seed}.gif")
        png = plot_setpoints(rec, plans, out / f"episode_{seed}_setpoints.png", label)
        t_success = float(rec["time_to_success_s"])
        rows.append(
            {
                "seed": seed,
                "goal": str(rec["goal"]),
                "success": t_success >= 0,
                "time_to_success_s": t_success if t_success >= 0 else None,
                "plans_drawn": len(plans),
                "frames": len(frames.frames),
                "gif": str(gif),
                "gif_bytes": gif.stat().st_size,
                "setpoint_plot": str(png),
            }
        )
    return rows


def run(args: argparse.Namespace) -> tuple[Any, list[dict]]:
    from cosmos_ros.models import PANDA_TOUCH_TINY, profile_path
    from cosmos_ros.testing.ros_harness import pick_domain_id
    from cosmos_ros.tools.eval_closed_loop import run_row

    out = Path(args.out).resolve()
    work = out / "work"
    record_dir = work / f"records_{args.row}"
    if record_dir.exists():  # records of an earlier run must not be drawn as this run's
        for old in record_dir.glob("episode_*.npz"):
            old.unlink()
    model = args.model_path or str(PANDA_TOUCH_TINY)
    action_space = args.action_space or (
        str(profile_path(model)) if profile_path(model).is_file() else "arm7_joints"
    )
    if args.row == "random":
        from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline

        model = str(work / "tiny_random")
        if not (Path(model) / "model_index.json").is_file():
            make_tiny_pipeline(Path(model), seed=0)
    label = {"trained": f"trained policy {Path(model).name}", "random": "random weights", "expert": "expert"}
    print(
        f"[demo] {args.row}: {args.episodes} episode(s) from seed {args.first_seed}"
        + ("" if args.row == "expert" else f", model {model}")
        + " (sim, planner, safety: three processes over DDS, lockstep)",
        flush=True,
    )
    overrides = {"backend": args.backend} if args.row != "expert" else None
    result = run_row(
        args.row, args.episodes, args.first_seed, model, action_space, 0.0, args.steps, work,
        pick_domain_id(), plan_rate_hz=args.plan_rate_hz, planner_overrides=overrides,
    )  # fmt: skip
    if result.error:
        raise RuntimeError(result.error)
    print("[demo] rendering the episodes (offline re-render from the sim's records)", flush=True)
    video = VideoConfig(every_ticks=args.every_ticks, size=args.size)
    episodes = episode_media(result, record_dir, out, video, label[args.row])
    return result, episodes


def _scene_kinds(args: argparse.Namespace) -> Callable[[int], str] | None:
    """What a seed was to the model's training (from its ``training.json``; None: no such record)."""
    from cosmos_ros.models import PANDA_TOUCH_TINY

    path = Path(args.model_path or PANDA_TOUCH_TINY) / "training.json"
    try:
        record = json.loads(path.read_text())
        held = {int(s) for s in record["held_out_episodes"]}
        n_seeds = int(record["demos"]["episodes"]) + len(held)  # demos use seeds 0 .. n - 1
    except (OSError, ValueError, KeyError, TypeError):
        return None

    def kind(seed: int) -> str:
        if seed in held:
            return "HELD-OUT scene"
        return "training scene" if 0 <= seed < n_seeds else "never seen in training"

    return kind


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="demo_closed_loop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="artifacts/demo", help="output directory (GIFs, plots, summary, records)")
    p.add_argument("--row", default="trained", choices=ROWS, help="who plans: model, random weights, expert")
    p.add_argument(
        "--model-path", default="", help="trained pipeline dir; default: the committed tiny policy"
    )
    p.add_argument("--action-space", default="", help="profile; default: <model-path>/action_space.yaml")
    p.add_argument(
        "--first-seed", type=int, default=1_000_000, help="seed of the first episode (evaluation seeds)"
    )
    p.add_argument("--episodes", type=int, default=3, help="episodes (seeds first-seed, first-seed + 1, ...)")
    p.add_argument("--steps", type=int, default=10, help="denoising steps (the tiny policy: 10)")
    p.add_argument("--backend", default="fast", choices=("diffusers", "fast", "tensorrt"), help="planner")
    p.add_argument("--plan-rate-hz", type=float, default=1.0, help="camera frames (plans) per sim second")
    p.add_argument("--every-ticks", type=int, default=10, help="GIF: one frame per this many 10 ms ticks")
    p.add_argument("--size", type=int, default=256, help="GIF: frame size (pixels, square)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.episodes <= 50 or args.first_seed < 0:
        print(f"--episodes must be in [1, 50] and --first-seed >= 0, got {args.episodes}, {args.first_seed}")
        return 2
    from cosmos_ros.tools.eval_closed_loop import format_table

    t0 = time.monotonic()
    try:
        result, episodes = run(args)
    except Exception as exc:  # a user-facing command: one clear line, exit 1
        print(f"[demo] FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print()
    print(format_table([result]))
    print()
    scene_kind = _scene_kinds(args) if args.row == "trained" else None
    for e in episodes:
        outcome = f"SUCCESS at {e['time_to_success_s']:.2f} s" if e["success"] else "no success"
        scene = ""
        if scene_kind is not None:
            e["scene"] = scene_kind(int(e["seed"]))
            scene = f"; training.json: {e['scene']}"
        print(f"[demo] seed {e['seed']} ({e['goal']!r}): {outcome}; {e['plans_drawn']} plans drawn{scene}")
        print(f"         {e['gif']}  ({e['frames']} frames, {e['gif_bytes'] / 1e3:.0f} kB)")
        print(f"         {e['setpoint_plot']}")
    summary = Path(args.out).resolve() / "closed_loop_summary.json"
    summary.write_text(
        json.dumps(
            {
                "row": result.row,
                "episodes": result.episodes,
                "successes": result.successes,
                "success_rate": result.success_rate,
                "violations": result.violations,
                "lockstep_timeouts": result.lockstep_timeouts,
                "decisions": dict(result.decisions),
                "per_episode": episodes,
            },
            indent=2,
        )
    )
    print(f"[demo] summary: {summary}")
    print(f"[demo] done in {time.monotonic() - t0:.0f} s wall")
    return 0 if result.episodes == args.episodes else 1


if __name__ == "__main__":
    sys.exit(main())
