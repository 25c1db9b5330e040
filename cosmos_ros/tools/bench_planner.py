"""Benchmark: per-stage time of one plan (image + goal -> decoded actions), printed as a table.

Why a script and not a timed test: timings depend on the machine and its load, so they are measured and
reported, never asserted. Without ``--model`` the tiny random-weight pipeline is generated into a temporary
directory (its timings describe the runtime's overhead and the tiny model, nothing about Cosmos 3 Nano).

Stages come from the backend (see ``cosmos_ros.runtime.diffusers_backend``): ``prepare`` (checks, tokenise,
image preprocessing, VAE encode), ``encode_image`` (VAE encoder share of prepare), ``denoise``,
``denoise_per_step``, ``decode_video`` (0 unless ``--decode-video``), ``other`` (the rest), ``total``
(backend call), plus the runtime's ``decode_actions`` (de-normalise + 6D -> quaternion) and ``plan_total``.
Each column is a statistic of that stage alone, so medians of the parts need not add up to the median total.

Usage: ``bench_planner [--model DIR] [--profile umi_pose_gripper] [--repeats 5] [--steps 30] [--chunk 16]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

STAGE_ORDER = (
    "prepare",
    "encode_image",
    "denoise",
    "denoise_per_step",
    "decode_video",
    "other",
    "total",
    "decode_actions",
    "plan_total",
)


def model_section(args: argparse.Namespace) -> tuple[list[tuple[str, float, float, float]], dict[str, Any]]:
    """Run ``args.warmup + args.repeats`` plans; return rows ``(stage, median, min, max)`` in ms + context."""
    import torch

    from cosmos_ros.runtime.options import PolicyOptions
    from cosmos_ros.runtime.policy import PolicyRuntime

    model = args.model
    tmp = None
    if model is None:
        from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline

        tmp = tempfile.TemporaryDirectory(prefix="cosmos_ros_bench_")
        model = str(make_tiny_pipeline(Path(tmp.name) / "tiny", seed=0))
    try:
        options = PolicyOptions(
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            chunk_size=args.chunk,
            resolution_tier=args.tier,
            seed=0,
            decode_video=args.decode_video,
        )
        runtime = PolicyRuntime.from_config(
            model, args.device, args.dtype, profile=args.profile, backend=args.backend, options=options
        )
        width, height = (int(v) for v in args.image.lower().split("x"))
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        samples: dict[str, list[float]] = {}
        for i in range(args.warmup + args.repeats):
            result = runtime.plan(image, "pick up the red cup and place it in the bowl")
            if i < args.warmup:
                continue
            for stage, seconds in result.timings.items():
                samples.setdefault(stage, []).append(seconds * 1e3)
    finally:
        if tmp is not None:
            tmp.cleanup()
    names = [s for s in STAGE_ORDER if s in samples] + sorted(set(samples) - set(STAGE_ORDER))
    rows = [(s, statistics.median(samples[s]), min(samples[s]), max(samples[s])) for s in names]
    context = {
        "model": args.model or "tiny random-weight pipeline (generated)",
        "backend": args.backend,
        "device": args.device,
        "dtype": args.dtype,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "settings": (
            f"profile={args.profile} image={args.image} tier={args.tier} chunk={args.chunk} "
            f"steps={args.steps} guidance={args.guidance} decode_video={args.decode_video}"
        ),
        "repeats": f"{args.repeats} (after {args.warmup} warm-up)",
        # Shared machines: a load above the core count means the numbers include waiting for a CPU.
        "load_avg_1min": f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
    }
    return rows, context


def format_table(rows: list[tuple[str, float, float, float]]) -> str:
    lines = [f"{'stage':<18} {'median ms':>10} {'min ms':>10} {'max ms':>10}", "-" * 51]
    lines += [f"{s:<18} {med:>10.1f} {lo:>10.1f} {hi:>10.1f}" for s, med, lo, hi in rows]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="pipeline directory (default: generate the tiny model)")
    p.add_argument("--profile", default="umi_pose_gripper", help="action-space profile name or YAML path")
    p.add_argument("--backend", default="diffusers", help="diffusers | fast | tensorrt")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--image", default="320x240", help="conditioning image size WxH (default 320x240)")
    p.add_argument("--tier", type=int, default=256, help="resolution tier (default 256)")
    p.add_argument("--chunk", type=int, default=16, help="chunk size, multiple of 4 (default 16)")
    p.add_argument("--steps", type=int, default=30, help="denoising steps (default 30)")
    p.add_argument("--guidance", type=float, default=1.0, help="guidance scale (default 1.0)")
    p.add_argument("--decode-video", action="store_true", help="also decode predicted frames")
    p.add_argument("--repeats", type=int, default=5, help="timed plans (median reported; default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed plans first (default 1)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        print("--repeats must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    rows, context = model_section(args)
    print("== policy runtime: one plan, per stage ==")
    for key, value in context.items():
        print(f"{key:>14}: {value}")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
