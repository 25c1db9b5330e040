"""Evaluate a trained tiny policy offline on held-out demonstrations, through ``PolicyRuntime``.

Usage:
    python -m cosmos_ros.tools.eval_tiny_policy --model cosmos_ros/models/panda_touch_tiny --demos demos.npz \
        [--episodes held-out|all] [--max-rows 60] [--steps 10] [--guidance 1.0] [--backend diffusers] \
        [--predictions-out preds.npz] [--from-predictions preds.npz] [--no-reach]

Prints the arm-joint MAE of the model and of the mean predictor and, with pybullet, the grasp-point reach
error (see ``cosmos_ros.training.evaluate``). ``--episodes held-out`` (default) uses the episodes the
model's ``training.json`` lists as held out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from cosmos_ros.training.demos import load_demos
from cosmos_ros.training.evaluate import action_errors, predict, reach_errors
from cosmos_ros.training.trainer import PROFILE_FILE, TRAINING_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained pipeline directory")
    parser.add_argument("--demos", required=True, help="demonstrations .npz")
    parser.add_argument(
        "--episodes",
        default="held-out",
        choices=("held-out", "train", "all"),
        help="held-out (default): the episodes training.json lists as held out; train: the others",
    )
    parser.add_argument(
        "--max-rows", type=int, default=60, help="evaluate at most this many rows (spread evenly)"
    )
    parser.add_argument("--steps", type=int, default=10, help="denoising steps (default 10)")
    parser.add_argument("--guidance", type=float, default=1.0, help="guidance scale (default 1.0)")
    parser.add_argument("--backend", default="diffusers", help="diffusers or fast")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16 (default float32)")
    parser.add_argument(
        "--precision", default=None, help="fast backend only: bf16 (the dtype's own GEMMs) or fp8 (e4m3)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--predictions-out", help="save the predictions (.npz) for later analysis")
    parser.add_argument("--from-predictions", help="skip inference: analyse a saved predictions .npz")
    parser.add_argument("--no-reach", action="store_true", help="skip the pybullet reach analysis")
    args = parser.parse_args(argv)

    model = Path(args.model)
    demos = load_demos(args.demos)
    if args.episodes != "all":
        held = json.loads((model / TRAINING_FILE).read_text()).get("held_out_episodes", [])
        if not held:
            raise SystemExit(f"{model / TRAINING_FILE} lists no held-out episodes; use --episodes all")
        in_held = np.isin(demos.episode, held)
        demos = demos.subset(in_held if args.episodes == "held-out" else ~in_held)
    if len(demos) > args.max_rows:
        demos = demos.subset(np.linspace(0, len(demos) - 1, args.max_rows).round().astype(int))
    profile_path = model / PROFILE_FILE

    from cosmos_ros.action_space import load_profile

    profile = load_profile(profile_path)
    mean = np.asarray(profile.normalization.a)
    if args.from_predictions:
        pred = np.load(args.from_predictions)["predictions"]
        seconds = float("nan")
    else:
        import torch

        from cosmos_ros.runtime.policy import PolicyRuntime

        torch.set_num_threads(args.threads)
        runtime = PolicyRuntime.from_config(
            model,
            device=args.device,
            dtype=args.dtype,
            profile=profile_path,
            backend=args.backend,
            backend_options={"precision": args.precision} if args.precision else None,
            options={
                "num_inference_steps": args.steps,
                "guidance_scale": args.guidance,
                "chunk_size": demos.chunk_size,
            },
        )
        t0 = time.perf_counter()
        pred = predict(runtime, demos.frames, demos.goals)
        seconds = (time.perf_counter() - t0) / len(demos)
        if args.predictions_out:
            np.savez_compressed(args.predictions_out, predictions=pred, episode=demos.episode)
    err = action_errors(pred, demos.actions, mean)
    print(
        f"{err.rows} rows from {np.unique(demos.episode).size} {args.episodes} episodes, {args.steps} steps, "
        f"guidance {args.guidance}, backend {args.backend} {args.dtype}"
        f"{' precision ' + args.precision if args.precision else ''} ({seconds:.3f} s/plan)\n"
        f"arm-joint MAE: model {err.model_mae_rad:.4f} rad, mean predictor {err.mean_mae_rad:.4f} rad "
        f"(ratio {err.ratio:.3f})\n"
        f"per joint: {' '.join(f'{v:.4f}' for v in err.model_mae_per_joint)}"
    )
    if not args.no_reach:
        from cosmos_ros.sim.config import load_sim_config

        task = load_sim_config(None).task
        reach = reach_errors(pred, demos.actions, mean, task.approach_height_m, task.success_distance_m)
        print(
            f"grasp point vs expert's: model median {reach.model_median_m * 100:.1f} cm (mean "
            f"{reach.model_mean_m * 100:.1f} cm), mean predictor median "
            f"{reach.mean_predictor_median_m * 100:.1f} cm\n"
            f"predicted target within {task.success_distance_m * 100:.1f} cm of the cube: model "
            f"{reach.model_success_share:.0%}, mean predictor {reach.mean_predictor_success_share:.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
