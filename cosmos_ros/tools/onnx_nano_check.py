"""Export the denoiser step at Cosmos 3 Nano's widths past protobuf's 2 GB and check it under onnxruntime.

Why: the export is proven on the tiny model only; at Nano's widths (hidden 4096, 32/8 heads, FFN 12288,
action_dim 64) the weights exceed protobuf's 2 GB, so they must go to external data, and that is where ONNX
exports usually break. This tool builds a random-weight model of Nano's widths with ``--layers`` decoder
layers (4 give ~3 GB of fp32 step weights), exports the step in fp32 for the deployment configuration
(chunk 32, tier 256), runs it with onnxruntime on CPU and compares with the torch step on the same inputs
(relative L2).
With ``--fp8`` it also exports at opset 19, inserts FP8 Q/DQ (``onnx_export.quantize_onnx_fp8``, static
activation scales calibrated on another step's inputs) and compares that with torch fp32 and with the torch
FP8 path (``runtime.fp8``, dynamic per-token scales; ``_scaled_mm`` runs emulated on CPU).

Usage: ``python -m cosmos_ros.tools.onnx_nano_check --layers 4 --work /tmp/nano_onnx --fp8``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _sizes(directory: Path) -> str:
    return ", ".join(f"{p.name} {p.stat().st_size / 2**30:.3f} GiB" for p in sorted(directory.iterdir()))


def _feeds(backend: Any, plan: Any, step: int, bucket: int) -> dict[str, torch.Tensor]:
    from cosmos_ros.runtime.onnx_export import step_inputs

    return step_inputs(backend, plan.layouts[0], plan.x0_state, plan.tembs[step : step + 1], bucket)


def _torch_step(backend: Any, plan: Any, feeds: dict[str, torch.Tensor]) -> np.ndarray:
    from cosmos_ros.runtime.onnx_export import INPUT_NAMES, DenoiserStep

    module = DenoiserStep(backend, plan.layouts[0]).eval()
    with torch.no_grad():
        return module(*(feeds[n] for n in INPUT_NAMES)).numpy()


def _ort(
    path: Path, feeds: dict[str, torch.Tensor], optimize: bool = True
) -> tuple[np.ndarray, float, float]:
    """Run ``path`` once on CPU. ``optimize=False`` for FP8 Q/DQ graphs: onnxruntime 1.30's optimiser fuses
    Q/DQ + MatMul into ``MatMulIntegerToFloat``, which takes integer types only, and rejects the graph."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    t = time.perf_counter()
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    load = time.perf_counter() - t
    t = time.perf_counter()
    out = sess.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
    return out, load, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    from cosmos_ros.runtime.fast import FastPolicyBackend, relative_l2
    from cosmos_ros.runtime.fp8 import apply_fp8
    from cosmos_ros.runtime.onnx_export import (
        StepExportConfig,
        example_plan,
        export_step_onnx,
        external_data_files,
        has_fp8_qdq,
        quantize_onnx_fp8,
    )
    from cosmos_ros.tools.bench_fast import NANO, SMALL, build_pipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--size", choices=("nano", "small"), default="nano")
    parser.add_argument("--work", default="/tmp/nano_onnx")
    parser.add_argument("--fp8", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    lines: list[str] = []

    def p(s: str) -> None:
        lines.append(s)
        print(s, file=sys.stderr, flush=True)

    base = NANO if args.size == "nano" else SMALL
    size = dataclasses.replace(base, layers=args.layers, name=f"{base.name}, {args.layers} layers")
    t = time.perf_counter()
    pipe = build_pipeline(size, "cpu", torch.float32, "pick up the cube")
    n_params = sum(q.numel() for q in pipe.transformer.parameters())
    p(
        f"model: {size.name}: hidden {size.hidden}, {size.heads}/{size.kv_heads} heads, FFN {size.ffn}, "
        f"action_dim {size.action_dim}; {n_params / 1e9:.2f} B transformer params (fp32, CPU), built in "
        f"{time.perf_counter() - t:.0f}s; torch {torch.__version__}"
    )
    backend = FastPolicyBackend(pipe, use_cuda_graph=False, use_compile=False, cache_text=False)
    probe = example_plan(backend, StepExportConfig(chunk_size=32))
    bucket = probe.layouts[0].und_len + 16  # padded: the key mask is exercised
    config = StepExportConfig(chunk_size=32, text_bucket=bucket)
    work = Path(args.work)
    d32 = work / f"step_{config.tag()}_fp32"
    rss0 = _rss_gib()
    t = time.perf_counter()
    path = export_step_onnx(pipe, config, d32 / "step.onnx")
    p(
        f"fp32 export ({config.tag()}, opset 17): {time.perf_counter() - t:.0f}s; peak RSS {rss0:.1f} -> "
        f"{_rss_gib():.1f} GiB; files: {_sizes(d32)}; external data {external_data_files(path)}"
    )
    plan = example_plan(backend, config)
    feeds = _feeds(backend, plan, 1, bucket)
    ref = _torch_step(backend, plan, feeds)
    got, load, run = _ort(path, feeds)
    p(
        f"onnxruntime CPU vs torch fp32, same inputs: relative L2 {relative_l2(got, ref):.3e} "
        f"(session load {load:.0f}s, one step {run:.1f}s; |velocity| {np.linalg.norm(ref):.3g})"
    )
    if args.fp8:
        d19 = work / f"step_{config.tag()}_fp32_opset19"
        t = time.perf_counter()
        p19 = export_step_onnx(pipe, config, d19 / "step.onnx", opset=19)
        p(f"fp32 export at opset 19: {time.perf_counter() - t:.0f}s; files: {_sizes(d19)}")
        d8 = work / f"step_{config.tag()}_fp8qdq"
        calib = [{k: v.numpy() for k, v in _feeds(backend, plan, 0, bucket).items()}]
        t = time.perf_counter()
        info = quantize_onnx_fp8(p19, d8 / "step.onnx", calib)
        p(
            f"FP8 Q/DQ inserted: {info} in {time.perf_counter() - t:.0f}s; files: {_sizes(d8)}; "
            f"has_fp8_qdq {has_fp8_qdq(d8 / 'step.onnx')}"
        )
        got8, load8, run8 = _ort(d8 / "step.onnx", feeds, optimize=False)
        apply_fp8(backend, check_device=False)  # CPU: _scaled_mm emulated
        ref8 = _torch_step(backend, plan, feeds)
        p(
            f"FP8 Q/DQ under onnxruntime CPU (load {load8:.0f}s, step {run8:.1f}s): vs torch fp32 "
            f"{relative_l2(got8, ref):.3e}; vs torch FP8 path {relative_l2(got8, ref8):.3e}; torch FP8 vs "
            f"torch fp32 {relative_l2(ref8, ref):.3e}"
        )
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
