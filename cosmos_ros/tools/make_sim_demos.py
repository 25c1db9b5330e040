"""Write scripted-expert demonstrations of the closed-loop Panda task to an ``.npz`` file.

Usage::

    python -m cosmos_ros.tools.make_sim_demos --episodes 250 --seed 0 --out demos.npz \
        [--chunk 16] [--decisions 6] [--chunk-mode hold|trajectory] [--image-size 256] [--config panda.yaml]
        [--frame-mode dynamic|kinematic] [--workers 2] [--join part1.npz part2.npz ...]

Episode ``i`` uses seed ``seed + i``. Arrays (N = episodes x decisions): ``frames`` uint8 [N,H,W,3],
``goals`` str [N], ``actions`` float32 [N,T,8] (absolute targets: 7 joints rad + gripper opening m, one per
``step_period`` s), ``joint_positions`` float32 [N,8], ``episode`` int64 [N] (the episode's seed),
``expert_success`` bool [episodes]; metadata ``step_period``, ``seed``, ``image_size`` (H, W),
``joint_names``, ``chunk_mode``, ``frame_mode``. Evaluation seeds should not overlap: eval_closed_loop starts
at 1,000,000.
``--workers N`` splits the episodes into N contiguous seed ranges run in N processes (the result is the same
as one process: each episode depends on its seed only). ``--join`` writes the union of existing files instead.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from cosmos_ros.sim.config import SimConfig, load_sim_config
from cosmos_ros.sim.demos import CHUNK_MODES, FRAME_MODES, DemoConfig, concat_demo_arrays, generate_demos


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=0, help="number of episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (episode i: seed + i)")
    parser.add_argument("--out", type=Path, required=True, help="output .npz path")
    parser.add_argument("--chunk", type=int, default=16, help="actions per chunk T")
    parser.add_argument("--step-period", type=float, default=1.0 / 15.0, help="seconds between actions")
    parser.add_argument("--decisions", type=int, default=6, help="decision points per episode")
    parser.add_argument(
        "--decision-interval", type=float, default=0.4, help="seconds between decision points"
    )
    parser.add_argument("--chunk-mode", choices=CHUNK_MODES, default="hold", help="hold: IK target repeated")
    parser.add_argument(
        "--frame-mode",
        choices=FRAME_MODES,
        default="dynamic",
        help="dynamic: frames from the simulated execution; kinematic: arm set to the expert's pose (fast)",
    )
    parser.add_argument("--image-size", type=int, default=None, help="square camera size (default: config)")
    parser.add_argument(
        "--config", type=Path, default=None, help="sim config YAML (default config/sim/panda.yaml)"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes (contiguous seed ranges)")
    parser.add_argument("--join", type=Path, nargs="+", default=None, help="join these .npz files into --out")
    return parser


def _split(demo: DemoConfig, workers: int) -> list[DemoConfig]:
    """Contiguous seed ranges, one per worker (empty ranges dropped)."""
    bounds = np.linspace(0, demo.episodes, max(1, workers) + 1).round().astype(int)
    return [
        replace(demo, seed=demo.seed + int(a), episodes=int(b - a))
        for a, b in itertools.pairwise(bounds)
        if b > a
    ]


def _run_part(args: tuple[SimConfig, DemoConfig]) -> dict[str, np.ndarray]:
    return generate_demos(*args)


def _generate(sim_config: SimConfig, demo: DemoConfig, workers: int, start: float) -> dict[str, np.ndarray]:
    if workers <= 1:

        def progress(i: int) -> None:
            rate = (i + 1) / max(time.monotonic() - start, 1e-9)
            print(f"\repisode {i + 1}/{demo.episodes} ({rate:.2f}/s)", end="", file=sys.stderr, flush=True)

        return generate_demos(sim_config, demo, progress)
    # spawn: pybullet's client state must not be forked.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        parts = pool.map(_run_part, [(sim_config, part) for part in _split(demo, workers)])
    return concat_demo_arrays(parts)


def _join(paths: list[Path], out: Path) -> int:
    parts = []
    for path in paths:
        with np.load(path) as data:
            parts.append({k: data[k] for k in data.files})
    arrays = concat_demo_arrays(parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
    print(f"wrote {out}: {arrays['frames'].shape[0]} samples from {len(paths)} files")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.join:
        return _join(args.join, args.out)
    if args.episodes <= 0:
        print("--episodes must be > 0 (or use --join)", file=sys.stderr)
        return 2
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
        frame_mode=args.frame_mode,
    )
    start = time.monotonic()
    arrays = _generate(sim_config, demo, args.workers, start)
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
