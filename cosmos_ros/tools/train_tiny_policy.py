"""Train a tiny Cosmos 3 policy (``Cosmos3OmniTransformer``, policy mode, flow matching) on demonstrations.

Reads a demonstrations ``.npz`` (``cosmos_ros.tools.make_sim_demos``) or draws the synthetic stand-in, holds
out whole episodes for evaluation, trains (``cosmos_ros.training.trainer``) with a progress bar showing the
loss, and writes a pipeline directory that ``PolicyRuntime.from_config`` loads like any checkpoint, with its
action-space profile (``action_space.yaml``, statistics from the data) and ``training.json`` beside it.

Usage:
    python -m cosmos_ros.tools.train_tiny_policy --demos demos.npz --out /tmp/panda_touch_tiny
    python -m cosmos_ros.tools.train_tiny_policy --synthetic-episodes 600 --out /tmp/synthetic_tiny
Options ``--steps``, ``--batch-size``, ``--seed``, ``--device`` (``cpu`` or ``cuda``), ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from cosmos_ros.training.demos import DemoSet, load_demos, make_synthetic_demos
from cosmos_ros.training.flow import PolicyShape
from cosmos_ros.training.trainer import TRAINING_FILE, TrainConfig, save_policy, train_policy

# The profile written next to the model keeps the name of the action space it fills in: plans are stamped
# with it and the safety node matches it against its limits file (config/limits/arm7_joints.yaml), and the
# sim accepts setpoints in its axis order. The statistics are this checkpoint's (the shipped
# config/action_spaces/arm7_joints.yaml keeps its placeholders for other checkpoints).
DEFAULT_PROFILE_NAME = "arm7_joints"


def _demos(args: argparse.Namespace) -> DemoSet:
    if args.demos:
        return load_demos(args.demos)
    return make_synthetic_demos(args.synthetic_episodes, seed=args.data_seed)


def _progress(total: int, desc: str):  # -> callable(step, loss, action_loss)
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)

    def update(step: int, loss: float, action_loss: float) -> None:
        bar.set_postfix(loss=f"{loss:.4f}", action=f"{action_loss:.4f}", refresh=False)
        bar.update(1)
        if step + 1 == total:
            bar.close()

    return update


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--demos", help="demonstrations .npz (cosmos_ros.tools.make_sim_demos)")
    src.add_argument("--synthetic-episodes", type=int, help="train on N synthetic episodes instead")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    parser.add_argument("--out", required=True, help="output pipeline directory")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--layers", type=int, default=TrainConfig.num_layers)
    parser.add_argument("--hidden", type=int, default=TrainConfig.hidden_size)
    parser.add_argument("--intermediate", type=int, default=TrainConfig.intermediate_size)
    parser.add_argument(
        "--empty-prompt-prob",
        type=float,
        default=TrainConfig.empty_prompt_prob,
        help="share of samples trained on the empty prompt (needed for guidance > 1; 0: run with guidance 1)",
    )
    parser.add_argument(
        "--vision-weight",
        type=float,
        default=TrainConfig.vision_weight,
        help="weight of the future-frame loss relative to the action loss",
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument(
        "--held-out-fraction",
        type=float,
        default=0.1,
        help="fraction of episodes kept out of training for evaluation (0 trains on all; default 0.1)",
    )
    parser.add_argument("--profile-name", default=DEFAULT_PROFILE_NAME, help="name of the written profile")
    parser.add_argument(
        "--time-limit-s",
        type=float,
        default=None,
        help="safety net: stop after this many seconds of training (recorded in training.json)",
    )
    parser.add_argument(
        "--init-from", default=None, help="continue from this pipeline directory's transformer (same size)"
    )
    parser.add_argument(
        "--latents-cache",
        default=None,
        help="encoded frames (.pt): read if it exists and matches the frames, else written (continued runs)",
    )
    parser.add_argument(
        "--profile-out", help="also copy the profile YAML here (e.g. config/action_spaces/...)"
    )
    args = parser.parse_args(argv)

    demos = _demos(args)
    held_out_episodes: list[int] = []
    train = demos
    if args.held_out_fraction > 0:
        train, held = demos.split_by_episode(args.held_out_fraction, seed=args.seed)
        held_out_episodes = sorted(int(e) for e in np.unique(held.episode))
    meta = demos.metadata
    rate = (
        1.0 / float(meta["step_period"]) if "step_period" in meta else float(meta.get("action_rate_hz", 15.0))
    )
    shape = PolicyShape(chunk_size=demos.chunk_size, fps=rate)
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        num_layers=args.layers,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        empty_prompt_prob=args.empty_prompt_prob,
        vision_weight=args.vision_weight,
        seed=args.seed,
        threads=args.threads,
    )
    print(
        f"training on {len(train)} rows ({np.unique(train.episode).size} episodes; "
        f"{len(held_out_episodes)} held out), chunk {shape.chunk_size}, "
        f"{cfg.steps} steps x {cfg.batch_size}, "
        f"device {args.device}",
        flush=True,
    )
    result = train_policy(
        train,
        cfg,
        shape,
        device=args.device,
        on_step=_progress(cfg.steps, "train"),
        time_limit_s=args.time_limit_s,
        init_from=args.init_from,
        latents_cache=args.latents_cache,
    )
    out = save_policy(result, args.out, cfg, shape, train, profile_name=args.profile_name)
    record = json.loads((out / TRAINING_FILE).read_text())
    record["held_out_episodes"] = held_out_episodes
    record["init_from"] = str(args.init_from) if args.init_from else None
    record["demos"]["file"] = (
        str(args.demos) if args.demos else f"synthetic(episodes={args.synthetic_episodes})"
    )
    (out / TRAINING_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if args.profile_out:
        Path(args.profile_out).write_text((out / "action_space.yaml").read_text())
    n_params = sum(p.numel() for p in result.pipe.transformer.parameters())
    print(
        f"wrote {out} ({n_params} transformer parameters); loss {record['loss_first_10_steps']:.4f} -> "
        f"{record['loss_last_10_steps']:.4f} (mean of first/last 10 steps) in {result.seconds:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
