"""The models ``bench_policy_server`` measures with, built the same way in the bench and in its servers.

Kinds:
  standin  ``SleepBackend``: sleeps with the CPU free (what a GPU inference leaves to the host), so the
           numbers are the transport's alone
  tiny     the pipeline directory ``args.model_path`` (the generated tiny model by default), float32
  small    ``bench_fast.SMALL`` with random weights, float32: runs on CPU; a smoke test of the built path
  nano     ``bench_fast.NANO`` (Cosmos 3 Nano widths) with random weights, bfloat16; needs a GPU
Why small and nano are built, not loaded: a Nano-size pipeline saved to hand it to the server would write
~30 GB; each process builds its own copy on the device instead (``build_pipeline`` seeds torch with 0).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

GOAL = "pick up the red block"
KINDS = ("standin", "tiny", "small", "nano")
# Kinds built with random weights at a bench_fast size: (size name in bench_fast, dtype).
BUILT = {"small": ("SMALL", "float32"), "nano": ("NANO", "bfloat16")}
# Model id of the kinds without a directory (client and server must agree on it; see wire.ServedModel).
MODEL_IDS = {"standin": "stand-in", "small": "cosmos3-small-random", "nano": "cosmos3-nano-size-random"}


def options(args: argparse.Namespace) -> Any:
    from cosmos_ros.runtime.options import PolicyOptions

    return PolicyOptions(
        num_inference_steps=args.steps,
        chunk_size=args.chunk_size,
        guidance_scale=args.guidance,
        resolution_tier=args.tier,
    )


def frame(args: argparse.Namespace) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)


def model_ref(args: argparse.Namespace) -> str:
    """What client and server call the model of ``args.kind`` (its directory, or a name for the others)."""
    return str(args.model_path) if args.kind == "tiny" else MODEL_IDS[args.kind]


def model_dtype(kind: str) -> str:
    return BUILT[kind][1] if kind in BUILT else "float32"


class TimedBackend:
    """Wraps an in-process backend to record the model call's wall time next to the plan's."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.last_s = inner, getattr(inner, "name", "custom"), 0.0

    def run(self, request: Any) -> Any:
        t0 = time.perf_counter()
        out = self.inner.run(request)
        self.last_s = time.perf_counter() - t0
        return out


def _standin_runtime(args: argparse.Namespace) -> Any:
    """The runtime around the stand-in model (sleeps, CPU free: what a GPU inference leaves to the host)."""
    from cosmos_ros.action_space import load_profile
    from cosmos_ros.runtime.policy import PolicyRuntime
    from cosmos_ros.tools.bench_planner_node import SleepBackend

    prof = load_profile(args.action_space)
    backend = SleepBackend(args.standin_ms / 1000.0, prof.raw_width)
    return PolicyRuntime(backend, prof, options(args), model_id=model_ref(args))


def _built_runtime(args: argparse.Namespace) -> Any:
    """The runtime around a random-weight pipeline of ``bench_fast``'s size for ``args.kind``, built on the
    device (no files: a Nano-size save and load would cost more than the build)."""
    import torch

    from cosmos_ros.action_space import load_profile
    from cosmos_ros.runtime.loader import domain_raw_width, resolve_device
    from cosmos_ros.runtime.policy import PolicyRuntime, get_backend_factory
    from cosmos_ros.tools import bench_fast

    size_name, dtype = BUILT[args.kind]
    device = resolve_device(args.device)  # no GPU: a clear ValueError before anything is built
    prof = load_profile(args.action_space)
    width = domain_raw_width(prof.domain_name)
    if prof.raw_width != width:
        raise ValueError(
            f"profile {prof.name!r} has {prof.raw_width} columns, domain {prof.domain_name!r} {width}"
        )
    factory = get_backend_factory(args.backend)
    pipe = bench_fast.build_pipeline(getattr(bench_fast, size_name), str(device), getattr(torch, dtype), GOAL)
    return PolicyRuntime(factory(pipe), prof, options(args), model_id=model_ref(args))


def build_runtime(args: argparse.Namespace) -> Any:
    """The in-process runtime of ``args.kind`` (the server of a built kind makes the same one)."""
    from cosmos_ros.runtime.policy import PolicyRuntime

    if args.kind == "standin":
        return _standin_runtime(args)
    if args.kind == "tiny":
        return PolicyRuntime.from_config(args.model_path, device=args.device, dtype="float32",
                                         profile=args.action_space, backend=args.backend,
                                         options=options(args))  # fmt: skip
    return _built_runtime(args)


def release(rt: Any) -> None:
    """Free a runtime's GPU memory (graphs, weights) so the servers that follow have the card's headroom."""
    rt.backend = None
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def label(args: argparse.Namespace) -> str:
    if args.kind == "standin":
        return (
            f"stand-in model: sleeps {args.standin_ms:.0f} ms, CPU free (as a GPU inference leaves the host)"
        )
    what = Path(args.model_path).name if args.kind == "tiny" else MODEL_IDS[args.kind]
    size = {
        "tiny": "tiny model",
        "small": "small size (smoke test, not a benchmark)",
        "nano": "Cosmos 3 Nano size",
    }
    return f"{size[args.kind]} {what} ({args.backend}, {args.device}, {model_dtype(args.kind)})"
