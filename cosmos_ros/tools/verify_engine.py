"""One command on the target: is the TensorRT engine of a configuration right? torch vs onnxruntime vs engine.

Steps: load the pipeline -> export the denoiser step to ONNX (fp32) in a scratch directory -> run it under
onnxruntime and compare with the torch step on the same inputs -> where ``tensorrt`` imports and CUDA is up,
build (or load from the cache) the engine with ``export_engine`` and compare it with torch and onnxruntime,
with latency per step and per plan -> exit non-zero on disagreement beyond the stated tolerances.

Exit codes: 0 all comparisons within tolerance; 1 a disagreement; 2 bad arguments, or TensorRT missing
without ``--allow-no-tensorrt`` (then only the ONNX half ran, and the output says so).

Usage on a Jetson: ``verify_engine --model /path/to/Cosmos3-Nano --precision bf16`` (same configuration
flags as ``export_engine``). ``polygraphy`` is not required; where it is installed,
``polygraphy run <onnx> --trt --onnxrt`` is the independent second opinion the output suggests.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Stated tolerances (relative L2 of the step's velocity): fp32 onnxruntime vs torch is summation order only;
# an engine in bf16/fp16/FP8 is bounded by its precision (bf16 step vs fp32: ~1e-2 on the H200 runs).
ORT_TOLERANCE = 1e-4
ENGINE_TOLERANCE = {"bf16": 3e-2, "fp16": 1e-2, "fp8": 1.5e-1}


def _timed(fn: Any, repeats: int = 3) -> tuple[Any, float]:
    out = fn()
    t = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return out, (time.perf_counter() - t) / repeats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="local Cosmos 3 pipeline directory")
    parser.add_argument("--tier", type=int, default=256)
    parser.add_argument("--image-size", default="256x256")
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--text-bucket", type=int, default=256)
    parser.add_argument("--domain", default="umi")
    parser.add_argument("--precision", choices=tuple(ENGINE_TOLERANCE), default="bf16")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps of a plan (per-plan latency)")
    parser.add_argument("--ort-tolerance", type=float, default=ORT_TOLERANCE)
    parser.add_argument("--engine-tolerance", type=float, default=None)
    parser.add_argument("--allow-no-tensorrt", action="store_true", help="exit 0 after the ONNX half")
    parser.add_argument("--cache-dir", default=None, help="engine cache (default: export_engine's)")
    args = parser.parse_args(argv)

    import torch
    from diffusers import DiffusionPipeline

    from cosmos_ros.runtime.fast import FastPolicyBackend, relative_l2
    from cosmos_ros.runtime.onnx_export import (
        INPUT_NAMES,
        DenoiserStep,
        StepExportConfig,
        example_plan,
        export_step_onnx,
        step_inputs,
    )

    try:
        h, w = (int(x) for x in args.image_size.lower().split("x"))
        config = StepExportConfig(args.tier, h, w, args.chunk, args.text_bucket, args.domain)
    except ValueError as exc:
        print(f"verify_engine: {exc}", file=sys.stderr)
        return 2
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = DiffusionPipeline.from_pretrained(args.model, torch_dtype=torch.float32).to(device)
    backend = FastPolicyBackend(pipe, use_cuda_graph=False, use_compile=False, cache_text=False)
    plan = example_plan(backend, config)
    feeds = step_inputs(backend, plan.layouts[0], plan.x0_state, plan.tembs[:1], config.text_bucket)
    module = DenoiserStep(backend, plan.layouts[0]).eval()
    with torch.no_grad():
        ref, t_torch = _timed(lambda: module(*(feeds[n] for n in INPUT_NAMES)).float().cpu().numpy())
    failures: list[str] = []
    print(f"configuration {config.tag()}, device {device}; torch fp32 step {t_torch * 1e3:.1f} ms")

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="verify_engine_") as scratch:
        onnx_path = export_step_onnx(pipe, config, Path(scratch) / "step.onnx")
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        np_feeds = {k: v.detach().cpu().numpy() for k, v in feeds.items()}
        got_ort, t_ort = _timed(lambda: sess.run(None, np_feeds)[0], repeats=1)
        err = relative_l2(got_ort, ref)
        ok = err <= args.ort_tolerance
        print(
            f"onnxruntime (CPU) vs torch fp32: relative L2 {err:.3e} (tolerance {args.ort_tolerance:.0e}) "
            f"{'ok' if ok else 'DISAGREES'}; {t_ort * 1e3:.1f} ms/step"
        )
        if not ok:
            failures.append("onnxruntime vs torch")

    if importlib.util.find_spec("tensorrt") is None or device != "cuda":
        print("TensorRT: not installed or no CUDA device: the engine was NOT built or checked")
        if failures:
            return 1
        return 0 if args.allow_no_tensorrt else 2
    return _verify_engine(args, config, pipe, backend, plan, feeds, ref, got_ort, failures)


def _verify_engine(
    args: argparse.Namespace,
    config: Any,
    pipe: Any,
    backend: Any,
    plan: Any,
    feeds: dict[str, Any],
    ref: np.ndarray,
    got_ort: np.ndarray,
    failures: list[str],
) -> int:  # pragma: no cover - needs TensorRT and a GPU (not on this project's machines)
    import tensorrt as trt
    import torch

    from cosmos_ros.runtime.fast import relative_l2
    from cosmos_ros.runtime.onnx_export import (
        EXPORT_OPSET,
        engine_cache_path,
        model_fingerprint,
    )
    from cosmos_ros.runtime.tensorrt_backend import TensorRTStep
    from cosmos_ros.tools import export_engine

    cache = Path(args.cache_dir) if args.cache_dir else export_engine.DEFAULT_CACHE
    build_args = [
        "--model", args.model, "--tier", str(args.tier), "--image-size", args.image_size,
        "--chunk", str(args.chunk), "--text-bucket", str(args.text_bucket), "--domain", args.domain,
        "--precision", args.precision, "--cache-dir", str(cache),
    ]  # fmt: skip
    if export_engine.main(build_args) != 0:
        print("verify_engine: the engine build failed", file=sys.stderr)
        return 1
    engine_path = engine_cache_path(
        cache, config, args.precision, torch.cuda.get_device_name(), trt.__version__,
        source=model_fingerprint(Path(args.model)), opset=EXPORT_OPSET,
    )  # fmt: skip
    step = TensorRTStep(engine_path, torch.device("cuda"))
    got, t_engine = _timed(lambda: step(feeds).cpu().numpy(), repeats=10)
    tol = args.engine_tolerance or ENGINE_TOLERANCE[args.precision]
    for label, other in (("torch fp32", ref), ("onnxruntime", got_ort)):
        err = relative_l2(got, other)
        ok = err <= tol
        print(
            f"engine ({args.precision}) vs {label}: relative L2 {err:.3e} (tolerance {tol:.0e}) "
            f"{'ok' if ok else 'DISAGREES'}"
        )
        if not ok:
            failures.append(f"engine vs {label}")
    evals = 2  # the deployment configuration's guidance: two evaluations per step
    print(
        f"engine latency: {t_engine * 1e3:.1f} ms/step-evaluation; plan of {args.steps} steps with guidance: "
        f"{t_engine * evals * args.steps * 1e3:.0f} ms of engine time"
    )
    print(
        f"second opinion where installed: polygraphy run {engine_path.with_suffix('.onnx.d')}/step.onnx "
        "--trt --onnxrt"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
