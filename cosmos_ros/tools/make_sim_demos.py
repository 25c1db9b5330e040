"""Write scripted-expert demonstrations of the closed-loop Panda task to an ``.npz`` file.

Usage::

    python -m cosmos_ros.tools.make_sim_demos --episodes 250 --seed 0 --out demos.npz \
        [--chunk 16] [--decisions 6] [--chunk-mode hold|trajectory] [--image-size 256] [--config panda.yaml]

Episode ``i`` uses seed ``seed + i``. Arrays (N = episodes x decisions): ``frames`` uint8 [N,H,W,3],
``goals`` str [N], ``actions`` float32 [N,T,8] (absolute targets: 7 joints rad + gripper opening m, one per
``step_period`` s), ``joint_positions`` float32 [N,8], ``episode`` int64 [N] (the episode's seed),
``expert_success`` bool [episodes]; metadata ``step_period``, ``seed``, ``image_size`` (H, W),
``joint_names``, ``chunk_mode``. Evaluation seeds should not overlap: eval_closed_loop starts at 1,000,000.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from cosmos_ros.sim.config import load_sim_config
from cosmos_ros.sim.demos import CHUNK_MODES, DemoConfig, generate_demos


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (episode i: seed + i)")
    parser.add_argument("--out", type=Path, required=True, help="output .npz path")
    parser.add_argument("--chunk", type=int, default=16, help="actions per chunk T")
    parser.add_argument("--step-period", type=float, default=1.0 / 15.0, help="seconds between actions")
    parser.add_argument("--decisions", type=int, default=6, help="decision points per episode")
    parser.add_argument(
        "--decision-interval", type=float, default=0.4, help="seconds between decision points"
    )
    parser.add_argument("--chunk-mode", choices=CHUNK_MODES, default="hold", help="hold: IK target repeated")
    parser.add_argument("--image-size", type=int, default=None, help="square camera size (default: config)")
    parser.add_argument(
        "--config", type=Path, default=None, help="sim config YAML (default config/sim/panda.yaml)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sim_config = load_sim_config(args.config)
    if args.image_size is not None:
        sim_config = sim_config.with_camera_size(args.image_size, args.image_size)
    demo = DemoConfig(
        episodes=args.episodes,
        seed=args.seed,
        chunk=args.chunk,
        step_period=args.step_period,
        decisions_per_episode=args.decisions,
        decision_interval_s=args.decision_interval,
        chunk_mode=args.chunk_mode,
    )
    start = time.monotonic()

    def progress(i: int) -> None:
        done = i + 1
        rate = done / max(time.monotonic() - start, 1e-9)
        print(f"\repisode {done}/{demo.episodes} ({rate:.2f}/s)", end="", file=sys.stderr, flush=True)

    arrays = generate_demos(sim_config, demo, progress)
    print(file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)  # type: ignore[arg-type]
    ok = int(arrays["expert_success"].sum())
    print(
        f"wrote {args.out}: {arrays['frames'].shape[0]} samples from {demo.episodes} episodes "
        f"(expert succeeded in {ok}/{demo.episodes}) in {time.monotonic() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
