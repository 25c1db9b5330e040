"""Benchmark: what prefix conditioning (real-time chunking) costs per plan in the fast backend.

Why: the conditioning runs inside the sampler loop (one small velocity correction per step) plus the target
construction on the planner side (``cosmos_ros.rtc.build_prefix``). Both must stay a small fraction of a plan
(issue 11: < 3 % at Nano size on the GPU). It reports, for the same requests:

- per-plan wall time and process CPU time, plain vs prefix-conditioned, interleaved (median of ``--repeats``
  pairs after warm-up), and their difference;
- the isolated costs: ``build_prefix`` on the planner side, and the conditioning work inside the loop
  (building the pinned velocity once + one correction per step), timed alone over many repetitions, which is
  the precise figure when the end-to-end difference drowns in run-to-run noise (a shared CPU).

Usage: ``python -m cosmos_ros.tools.bench_prefix --out bench/prefix_conditioning_cpu_tiny_<date>.txt`` (tiny
random model on CPU) or ``--size nano --device cuda`` (Cosmos 3 Nano size, random weights, GPU).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PERIOD = 1.0 / 15.0
DOMAIN = "robomind-franka"
PROMPT = "pick up the red block and put it in the bowl"


def _load(size: str, device: str) -> tuple[Any, str]:
    import torch

    from cosmos_ros.runtime.fast import FastPolicyBackend

    if size == "tiny":
        from cosmos_ros.runtime.loader import load_pipeline
        from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline

        path = make_tiny_pipeline(Path(tempfile.mkdtemp(prefix="bench_prefix_")), seed=0)
        pipe = load_pipeline(path, device=device, dtype="float32", required_width=10)
        return FastPolicyBackend(pipe), "tiny random Cosmos 3 (make_tiny_model, seed 0), float32"
    from cosmos_ros.tools.bench_fast import NANO, build_pipeline

    pipe = build_pipeline(NANO, device, torch.bfloat16, PROMPT)
    return FastPolicyBackend(pipe), f"{NANO.name}, bfloat16"


def _plan(backend: Any, request: Any) -> tuple[float, float]:
    """(wall s, process CPU s) of one plan; the backend returns host arrays, so the GPU work is included."""
    w0, c0 = time.perf_counter(), time.process_time()
    backend.run(request)
    return time.perf_counter() - w0, time.process_time() - c0


def _isolated_loop_cost(backend: Any, request: Any, steps: int, reps: int) -> float:
    """Seconds per plan of the conditioning work inside the sampler, timed alone (median of ``reps``)."""
    import torch

    from cosmos_ros.runtime.fast import _sync

    generator = torch.Generator("cpu").manual_seed(0)
    plan = backend.prepare(request, generator)
    n_vis = int(np.prod(plan.latent_shape))
    velocities = torch.zeros(steps, plan.x0_state.numel(), device=backend.device, dtype=torch.float32)
    out = []
    for _ in range(reps):
        _sync(backend.device)
        t0 = time.perf_counter()
        pin = backend._prefix_velocity(request, plan, n_vis, backend._upload_prefix(request))
        assert pin is not None
        for i in range(steps):
            v_act = velocities[i, n_vis:].view(request.chunk_size, backend.action_dim)
            v_act.add_(pin[1] * (pin[0] - v_act))
        _sync(backend.device)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def run(args: argparse.Namespace) -> str:
    import torch

    from cosmos_ros.rtc import ExecutingChunk, PrefixConfig, build_prefix
    from cosmos_ros.runtime.backend import PolicyRequest

    if args.threads:
        torch.set_num_threads(args.threads)
    backend, model = _load(args.size, args.device)
    rng = np.random.default_rng(0)
    h, w = (int(v) for v in args.image.split("x"))
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    base = PolicyRequest(
        image=image,
        prompt=PROMPT,
        domain_name=DOMAIN,
        chunk_size=args.chunk,
        num_inference_steps=args.steps,
        resolution_tier=args.tier,
    )
    previous = backend.run(base).actions
    latency = args.latency_fraction * args.chunk * PERIOD
    current = ExecutingChunk(0.0, PERIOD, previous)
    cfg = PrefixConfig(execution_horizon=min(args.chunk, 12), prefix_attention_schedule="exp")
    t0 = latency  # the next frame is captured when the next inference starts, one latency later
    prefix = build_prefix(current, t0, PERIOD, args.chunk, t0 + latency, cfg)
    assert prefix is not None
    conditioned = PolicyRequest(**{**base.__dict__, "prefix": prefix})

    for _ in range(args.warmup):
        backend.run(base)
        backend.run(conditioned)
    plain, pinned = [], []
    for k in range(args.repeats):
        # Alternate which goes first, so neither pays the other's cache and scheduler effects every time.
        if k % 2:
            pinned.append(_plan(backend, conditioned))
            plain.append(_plan(backend, base))
        else:
            plain.append(_plan(backend, base))
            pinned.append(_plan(backend, conditioned))

    build = []
    for _ in range(2000):
        b0 = time.perf_counter()
        build_prefix(current, t0, PERIOD, args.chunk, t0 + latency, cfg)
        build.append(time.perf_counter() - b0)
    loop_cost = _isolated_loop_cost(backend, conditioned, args.steps, reps=200)

    def med(xs: list[tuple[float, float]], k: int) -> float:
        return statistics.median(x[k] for x in xs)

    wall_off, wall_on = med(plain, 0), med(pinned, 0)
    cpu_off, cpu_on = med(plain, 1), med(pinned, 1)
    build_s = statistics.median(build)
    now = datetime.datetime.now(datetime.timezone.utc)  # not datetime.UTC: Python 3.10 has no such name
    lines = [
        f"cosmos_ros prefix-conditioning benchmark, {now:%Y-%m-%d %H:%M} UTC",
        f"command: python -m cosmos_ros.tools.bench_prefix {' '.join(sys.argv[1:])}",
        f"model: {model}; device {backend.device}; torch {torch.__version__}; "
        f"threads {torch.get_num_threads()}",
        f"request: image {w}x{h}, tier {args.tier}, chunk {args.chunk}, {args.steps} steps, guidance 1.0; "
        f"prefix: latency {100 * args.latency_fraction:.0f} % of the horizon -> d = {prefix.frozen_steps}, "
        f"execution_horizon {cfg.execution_horizon}, exp schedule",
        f"end to end, median of {args.repeats} interleaved pairs (order alternating) after "
        f"{args.warmup} warm-up pairs:",
        f"  wall per plan   : plain {1e3 * wall_off:9.3f} ms, conditioned {1e3 * wall_on:9.3f} ms, "
        f"difference {1e3 * (wall_on - wall_off):+8.3f} ms ({100 * (wall_on - wall_off) / wall_off:+.2f} %)",
        f"  CPU per plan    : plain {1e3 * cpu_off:9.3f} ms, conditioned {1e3 * cpu_on:9.3f} ms, "
        f"difference {1e3 * (cpu_on - cpu_off):+8.3f} ms ({100 * (cpu_on - cpu_off) / cpu_off:+.2f} %)",
        "isolated (the precise figure; end-to-end differences include run-to-run noise):",
        f"  build_prefix (planner side, NumPy)           : {1e6 * build_s:8.1f} us per plan (median of 2000)",
        f"  conditioning inside the sampler ({args.steps:>2} steps)  : {1e6 * loop_cost:8.1f} us per plan "
        "(median of 200)",
        f"  together                                     : {1e6 * (build_s + loop_cost):8.1f} us per plan = "
        f"{100 * (build_s + loop_cost) / wall_off:.3f} % of the plain plan's wall time, "
        f"{100 * (build_s + loop_cost) / cpu_off:.3f} % of its CPU time",
        f"load average at the end (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        f"on {os.cpu_count()} CPUs (a shared machine: end-to-end differences are noise at this size)",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("tiny", "nano"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image", default="240x320", help="HxW of the conditioning frame")
    parser.add_argument("--tier", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--latency-fraction", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    text = run(args)
    sys.stdout.write(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
