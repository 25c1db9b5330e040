"""Export the denoiser step at Cosmos 3 Nano's widths past protobuf's 2 GB and check it under onnxruntime.

Why: the export is proven on the tiny model only; at Nano's widths (hidden 4096, 32/8 heads, FFN 12288,
action_dim 64) the weights exceed protobuf's 2 GB, so they must go to external data, and that is where ONNX
exports usually break. This tool builds a random-weight model of Nano's widths with ``--layers`` decoder
layers (4 give ~3 GB of fp32 step weights), exports the step in fp32 for the deployment configuration
(chunk 32, tier 256) at ``--opset``, runs it with onnxruntime on CPU and compares with the torch step on the
same inputs (relative L2).
With ``--fp8`` it also inserts FP8 Q/DQ (``onnx_export.quantize_onnx_fp8``, static activation scales
calibrated on another step's inputs) into an opset-19 export (the fp32 one when ``--opset 19``, else a second
export) and compares that with torch fp32 and with the torch FP8 path (``runtime.fp8``, dynamic per-token
scales; off the GPU ``fp8_linear`` runs emulated).
The report (``--out``, written line by line so a killed run keeps what it measured) is self-contained: the
command, versions, memory, times, sizes, the numbers, and an estimate of what ``--estimate-layers`` layers
would need, extrapolated from this run (``fit_estimate``).

Usage: ``python -m cosmos_ros.tools.onnx_nano_check --layers 4 --opset 19 --fp8 --out report.txt``;
``--size small`` runs the same steps at a width a CPU machine checks in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

GIB = 2**30


def _rss_gib() -> float:
    """Peak resident set size of this process so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _mem_total_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError("/proc/meminfo has no MemTotal line")


def _sizes(directory: Path) -> str:
    return ", ".join(f"{p.name} {p.stat().st_size / GIB:.3f} GiB" for p in sorted(directory.iterdir()))


def _dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


@dataclasses.dataclass(frozen=True)
class Measured:
    """What a run at ``layers`` layers measured, the inputs of ``fit_estimate``."""

    layers: int
    params: int  # transformer parameters
    layer_params: int  # parameters of one decoder layer
    rss_start_gib: float  # peak RSS before the model was built (interpreter, torch, onnxruntime)
    rss_fp32_gib: float  # peak RSS after the fp32 export and its onnxruntime check
    seconds_fp32: float  # wall time to that point, build included
    rss_peak_gib: float  # peak RSS at the end of the run (the FP8 stage included with --fp8)
    seconds: float  # wall time of the whole run
    step_bytes: int  # fp32 step export on disk (graph + external data)

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}")
        if not 0 < self.layer_params * self.layers <= self.params:
            raise ValueError(
                f"layer_params {self.layer_params} x {self.layers} layers exceeds params {self.params}"
            )


def fit_estimate(m: Measured, layers: int, mem_total_gib: float) -> str:
    """One report line: what ``layers`` layers would need, extrapolated linearly from the run ``m``.

    Memory: the part of a measured peak above the start and the non-layer weights is taken to scale with the
    layer count (it also holds fixed costs such as the VAE, so this overestimates: a safe side). Time: the
    run is scaled by the layer count likewise. "fits" means under 90% of ``mem_total_gib``.
    """
    fixed = m.rss_start_gib + (m.params - m.layer_params * m.layers) * 4 / GIB
    params = m.params + (layers - m.layers) * m.layer_params

    def stage(rss: float, seconds: float) -> str:
        peak = fixed + max(rss - fixed, 0.0) / m.layers * layers
        verdict = "fits" if peak < 0.9 * mem_total_gib else "does NOT fit"
        return f"peak RSS ~{peak:.0f} GiB ({verdict}), wall ~{seconds * layers / m.layers:.0f}s"

    return (
        f"estimate for {layers} layers (linear in layers from this {m.layers}-layer run; {fixed:.1f} GiB "
        f"fixed): {params / 1e9:.2f} B params ({params * 4 / GIB:.1f} GiB fp32), fp32 step export "
        f"{m.step_bytes * layers / m.layers / GIB:.1f} GiB; RAM {mem_total_gib:.0f} GiB; fp32 check: "
        f"{stage(m.rss_fp32_gib, m.seconds_fp32)}; whole run: {stage(m.rss_peak_gib, m.seconds)}"
    )


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


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--layers", type=int, default=4, help="decoder layers of the random-weight model")
    parser.add_argument("--size", choices=("nano", "small"), default="nano", help="small: a CPU smoke run")
    parser.add_argument("--opset", type=int, choices=(17, 19), default=17, help="opset of the fp32 export")
    parser.add_argument("--work", default="/tmp/nano_onnx", help="directory for the exported files")
    parser.add_argument("--fp8", action="store_true", help="also check the FP8 Q/DQ graph")
    parser.add_argument("--estimate-layers", type=int, default=36, help="layers to estimate memory/time for")
    parser.add_argument("--out", default=None, help="report file, written line by line")
    args = parser.parse_args(argv)
    if args.layers < 1:
        parser.error(f"--layers must be >= 1, got {args.layers}")
    return args


def _reporter(out: str | None) -> Callable[[str], None]:
    """Print to stderr and append to ``out`` (flushed per line: a run killed by a timeout keeps its lines)."""
    fh = open(out, "w") if out else None  # noqa: SIM115  (open for the life of the process)

    def p(s: str) -> None:
        print(s, file=sys.stderr, flush=True)
        if fh is not None:
            fh.write(s + "\n")
            fh.flush()

    return p


def _header(p: Callable[[str], None], argv: list[str] | None) -> None:
    import onnx
    import onnxruntime

    cmd = " ".join(["python3 -m cosmos_ros.tools.onnx_nano_check", *(sys.argv[1:] if argv is None else argv)])
    p(f"cosmos_ros onnx_nano_check, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    p(f"command: {cmd}")
    p(
        f"host: {platform.node()}, {os.cpu_count()} CPUs, {_mem_total_gib():.0f} GiB RAM; Python "
        f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), onnx "
        f"{onnx.__version__}, onnxruntime {onnxruntime.__version__} (CPUExecutionProvider). Random weights."
    )


class DoesNotFitError(RuntimeError):
    """The model's fp32 weights alone would not fit in this machine's memory."""


def _preflight(size: Any, mem_total_gib: float) -> None:
    """Refuse, with the numbers, a size whose fp32 weights alone exceed 90% of RAM (counted on the meta
    device, no memory): the export and onnxruntime need more on top, so such a run could only end killed."""
    from cosmos_ros.tools.bench_fast import build_pipeline

    meta = build_pipeline(size, "meta", torch.float32, "pick up the cube")
    weights = sum(q.numel() for q in meta.transformer.parameters()) * 4 / GIB
    if _rss_gib() + weights > 0.9 * mem_total_gib:
        raise DoesNotFitError(
            f"not attempted: {size.layers} decoder layers at hidden {size.hidden} need {weights:.1f} GiB "
            f"for their fp32 transformer weights alone, plus {_rss_gib():.1f} GiB in use: over 90% of "
            f"{mem_total_gib:.0f} GiB RAM (export and onnxruntime need more on top)"
        )


def _build(args: argparse.Namespace, p: Callable[[str], None]) -> tuple[Any, Any, int, int]:
    """The random-weight pipeline and its fast backend, with the param counts (all, one layer)."""
    from cosmos_ros.runtime.fast import FastPolicyBackend
    from cosmos_ros.tools.bench_fast import NANO, SMALL, build_pipeline

    base = NANO if args.size == "nano" else SMALL
    size = dataclasses.replace(base, layers=args.layers, name=f"{base.name}, {args.layers} layers")
    _preflight(size, _mem_total_gib())
    t = time.perf_counter()
    pipe = build_pipeline(size, "cpu", torch.float32, "pick up the cube")
    n_params = sum(q.numel() for q in pipe.transformer.parameters())
    layer_params = sum(q.numel() for q in pipe.transformer.layers[0].parameters())
    p(
        f"model: {size.name}: hidden {size.hidden}, {size.heads}/{size.kv_heads} heads, FFN {size.ffn}, "
        f"action_dim {size.action_dim}; {n_params / 1e9:.3f} B transformer params "
        f"({layer_params / 1e6:.1f} M per layer; fp32, CPU), built in {time.perf_counter() - t:.0f}s; "
        f"peak RSS {_rss_gib():.1f} GiB"
    )
    backend = FastPolicyBackend(pipe, use_cuda_graph=False, use_compile=False, cache_text=False)
    return pipe, backend, n_params, layer_params


def _export(pipe: Any, config: Any, directory: Path, opset: int, p: Callable[[str], None]) -> Path:
    from cosmos_ros.runtime.onnx_export import export_step_onnx, external_data_files

    t = time.perf_counter()
    path = export_step_onnx(pipe, config, directory / "step.onnx", opset=opset)
    p(
        f"fp32 export ({config.tag()}, opset {opset}): {time.perf_counter() - t:.0f}s; peak RSS "
        f"{_rss_gib():.1f} GiB; files: {_sizes(directory)}; external data {external_data_files(path)}"
    )
    return path


def _check_fp8(
    backend: Any,
    plan: Any,
    bucket: int,
    p19: Path,
    feeds: dict[str, torch.Tensor],
    ref: np.ndarray,
    p: Callable[[str], None],
) -> None:
    """Q/DQ graph under onnxruntime vs torch fp32 and vs the torch FP8 path on the same inputs."""
    from cosmos_ros.runtime.fast import relative_l2
    from cosmos_ros.runtime.fp8 import apply_fp8
    from cosmos_ros.runtime.onnx_export import has_fp8_qdq, quantize_onnx_fp8

    d8 = p19.parent.with_name(p19.parent.name + "_fp8qdq")
    calib = [{k: v.numpy() for k, v in _feeds(backend, plan, 0, bucket).items()}]
    t = time.perf_counter()
    info = quantize_onnx_fp8(p19, d8 / "step.onnx", calib)
    p(
        f"FP8 Q/DQ inserted: {info} in {time.perf_counter() - t:.0f}s; peak RSS {_rss_gib():.1f} GiB; "
        f"files: {_sizes(d8)}; has_fp8_qdq {has_fp8_qdq(d8 / 'step.onnx')}"
    )
    got8, load8, run8 = _ort(d8 / "step.onnx", feeds, optimize=False)
    p(
        f"FP8 Q/DQ under onnxruntime CPU, optimisations off (load {load8:.0f}s, step {run8:.1f}s): vs torch "
        f"fp32 {relative_l2(got8, ref):.3e}; peak RSS {_rss_gib():.1f} GiB"
    )
    t = time.perf_counter()
    apply_fp8(backend, check_device=False)  # CPU: fp8_linear runs emulated
    ref8 = _torch_step(backend, plan, feeds)
    p(
        f"torch FP8 path (emulated on CPU, {time.perf_counter() - t:.0f}s): FP8 Q/DQ vs torch FP8 "
        f"{relative_l2(got8, ref8):.3e}; torch FP8 vs torch fp32 {relative_l2(ref8, ref):.3e}; peak RSS "
        f"{_rss_gib():.1f} GiB"
    )


def _run(args: argparse.Namespace, p: Callable[[str], None]) -> Measured:
    from cosmos_ros.runtime.fast import relative_l2
    from cosmos_ros.runtime.onnx_export import StepExportConfig, example_plan

    t0, rss_start = time.perf_counter(), _rss_gib()
    pipe, backend, n_params, layer_params = _build(args, p)
    probe = example_plan(backend, StepExportConfig(chunk_size=32))
    bucket = probe.layouts[0].und_len + 16  # padded: the key mask is exercised
    config = StepExportConfig(chunk_size=32, text_bucket=bucket)
    work = Path(args.work)
    d32 = work / f"step_{config.tag()}_fp32_opset{args.opset}"
    path = _export(pipe, config, d32, args.opset, p)
    plan = example_plan(backend, config)
    feeds = _feeds(backend, plan, 1, bucket)
    ref = _torch_step(backend, plan, feeds)
    got, load, run = _ort(path, feeds)
    p(
        f"onnxruntime CPU vs torch fp32, same inputs: relative L2 {relative_l2(got, ref):.3e} "
        f"(session load {load:.0f}s, one step {run:.1f}s; |velocity| {np.linalg.norm(ref):.3g}); peak RSS "
        f"{_rss_gib():.1f} GiB"
    )
    del got
    rss_fp32, seconds_fp32 = _rss_gib(), time.perf_counter() - t0
    if args.fp8:
        p19 = (
            path
            if args.opset == 19
            else _export(pipe, config, work / f"step_{config.tag()}_fp32_opset19", 19, p)
        )
        _check_fp8(backend, plan, bucket, p19, feeds, ref, p)
    return Measured(
        layers=args.layers,
        params=n_params,
        layer_params=layer_params,
        rss_start_gib=rss_start,
        rss_fp32_gib=rss_fp32,
        seconds_fp32=seconds_fp32,
        rss_peak_gib=_rss_gib(),
        seconds=time.perf_counter() - t0,
        step_bytes=_dir_bytes(d32),
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    p = _reporter(args.out)
    _header(p, argv)
    try:
        measured = _run(args, p)
    except DoesNotFitError as e:
        p(str(e))
        return 2
    except Exception as e:  # the report must say where the run broke, not end silently
        p(f"FAILED: {type(e).__name__}: {e}")
        raise
    p(f"total: {measured.seconds:.0f}s; peak RSS {measured.rss_peak_gib:.1f} GiB")
    if args.estimate_layers != args.layers:
        p(fit_estimate(measured, args.estimate_layers, _mem_total_gib()))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
