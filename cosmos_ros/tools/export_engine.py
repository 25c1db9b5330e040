"""Build (or find in the cache) a TensorRT engine of the Cosmos 3 denoiser step for one configuration.

Why a tool run on the robot: a TensorRT engine is tied to the GPU model and the TensorRT version that built
it, so it is built where it runs (Jetson Orin / Thor) and cached under a name that carries the configuration,
the precision, the device name and the TensorRT version (``onnx_export.engine_cache_path``).

Steps: load the pipeline (``from_pretrained``, offline) -> export the step to ONNX
(``onnx_export.export_step_onnx``) -> parse it with TensorRT's ONNX parser -> build with the chosen precision,
showing TensorRT's build phases as they progress -> write the engine atomically.

Precisions: ``bf16`` (ONNX exported from the bf16 model, strongly typed network: the types are the model's),
``fp16`` (ONNX exported from the fp16 model, strongly typed as well), ``fp8`` (Hopper / Ada / Thor-class GPUs,
compute capability >= 8.9, and only from an ONNX that already carries FP8 Q/DQ nodes, e.g. quantised with
NVIDIA ModelOpt, passed with ``--onnx``: this tool does not quantise).

Usage: ``export_engine --model /path/to/Cosmos3-Nano --tier 256 --image-size 256x256 --chunk 16
--text-bucket 256 --precision bf16``. Exit codes: 0 built or cached, 2 bad arguments or TensorRT missing,
1 build failed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from cosmos_ros.runtime.onnx_export import (
    ENGINE_PRECISIONS,
    EXPORT_OPSET,
    StepExportConfig,
    engine_cache_path,
    file_fingerprint,
    has_fp8_qdq,
    model_fingerprint,
)

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cosmos_ros" / "engines"


def _import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError(
            "export_engine needs NVIDIA TensorRT's Python package: `pip install tensorrt` on an x86 GPU "
            "machine, "
            "or JetPack's python3-libnvinfer on Jetson"
        ) from exc
    return trt


def _progress_monitor(trt: Any) -> Any:
    """A TensorRT ``IProgressMonitor`` printing build phases (TensorRT >= 10), or ``None`` where absent."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class _Progress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._t0: dict[str, float] = {}
            self._steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._t0[phase_name] = time.perf_counter()
            self._steps[phase_name] = num_steps
            depth = 0 if parent_phase is None else 1
            print(f"{'  ' * depth}[trt] {phase_name} ({num_steps} steps)", flush=True)

        def step_complete(self, phase_name: str, step: int) -> bool:
            n = max(self._steps.get(phase_name, 1), 1)
            print(f"\r      {phase_name}: {step + 1}/{n}", end="", flush=True)
            return True  # keep building

        def phase_finish(self, phase_name: str) -> None:
            dt = time.perf_counter() - self._t0.get(phase_name, time.perf_counter())
            print(f"\r[trt] {phase_name} done in {dt:.1f}s", flush=True)

    return _Progress()


def network_flags(trt: Any) -> int:
    """Network-creation flags: strongly typed wherever the flag exists (every precision; issue 15, defect 1).

    Why strongly typed for fp16 too: ``BuilderFlag.FP16`` is deprecated since TensorRT 10.12 and gone in 11.0
    (where networks are always strongly typed and the flag does not exist). The fp16 engine is built from an
    ONNX exported in fp16, so the types come from the graph on every version.
    """
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def _load_timing_cache(trt: Any, config: Any, path: Path) -> Any:
    """Attach the timing cache kept beside the engines (created empty if none): configurations share it."""
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=True):
        cache = config.create_timing_cache(b"")  # stale cache of another TensorRT/GPU: start afresh
        config.set_timing_cache(cache, ignore_mismatch=True)
    return cache


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def build_engine(
    trt: Any,
    onnx_path: Path,
    engine_path: Path,
    precision: str,
    workspace_gib: float,
    timing_cache: Path | None = None,
) -> None:
    """Parse ``onnx_path`` (strongly typed) and write a serialised engine to ``engine_path`` (atomically)."""
    if precision not in ENGINE_PRECISIONS:
        raise ValueError(f"precision must be one of {ENGINE_PRECISIONS}, got {precision!r}")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    print(f"[trt] parsing {onnx_path}", flush=True)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    cache = _load_timing_cache(trt, config, timing_cache) if timing_cache is not None else None
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT build failed (see the messages above)")
    _write_atomic(engine_path, bytes(serialized))
    if cache is not None and timing_cache is not None:
        _write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    print(f"[trt] built {engine_path} in {time.perf_counter() - t0:.0f}s", flush=True)


def _peak_memory_note() -> str:
    """Peak host RSS and (where CUDA is up) peak torch GPU allocation of this process so far."""
    import resource

    note = f"peak host RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB"
    try:
        import torch

        if torch.cuda.is_available():
            note += f", peak torch GPU allocation {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="local Cosmos 3 pipeline directory (from_pretrained layout)")
    parser.add_argument("--onnx", help="build from this ONNX instead of exporting (e.g. an FP8 Q/DQ model)")
    parser.add_argument("--tier", type=int, default=256, help="resolution tier (256, 480, 704, 720)")
    parser.add_argument("--image-size", default="256x256", help="input image HEIGHTxWIDTH in pixels")
    parser.add_argument("--chunk", type=int, default=16, help="action chunk (multiple of 4)")
    parser.add_argument("--text-bucket", type=int, default=256, help="text tokens padded to this length")
    parser.add_argument("--domain", default="umi", help="embodiment traced in (fixes the raw action width)")
    parser.add_argument("--precision", choices=ENGINE_PRECISIONS, default="bf16")
    parser.add_argument(
        "--cache-dir", default=str(DEFAULT_CACHE), help=f"engine cache (default {DEFAULT_CACHE})"
    )
    parser.add_argument("--workspace-gib", type=float, default=8.0, help="TensorRT workspace limit")
    parser.add_argument("--force", action="store_true", help="rebuild even if a cached engine exists")
    args = parser.parse_args(argv)

    try:
        h, w = (int(x) for x in args.image_size.lower().split("x"))
        config = StepExportConfig(
            resolution_tier=args.tier,
            image_height=h,
            image_width=w,
            chunk_size=args.chunk,
            text_bucket=args.text_bucket,
            domain_name=args.domain,
        )
    except ValueError as exc:
        print(f"export_engine: {exc}", file=sys.stderr)
        return 2
    if args.model is None and args.onnx is None:
        print("export_engine: give --model (to export) or --onnx (to build from)", file=sys.stderr)
        return 2
    try:
        trt = _import_tensorrt()
    except ImportError as exc:
        print(f"export_engine: {exc}", file=sys.stderr)
        return 2
    import torch

    if not torch.cuda.is_available():
        print(
            "export_engine: TensorRT engines are built on the GPU that runs them; no CUDA device",
            file=sys.stderr,
        )
        return 2
    device_name = torch.cuda.get_device_name()
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    # The key carries what is baked into the engine: the weights (model or ONNX fingerprint), the domain's
    # traced action width, the exporter and the opset (issue 15, defect 2).
    source = file_fingerprint(Path(args.onnx)) if args.onnx else model_fingerprint(Path(args.model))
    engine_path = engine_cache_path(
        cache, config, args.precision, device_name, trt.__version__, source=source, opset=EXPORT_OPSET
    )
    if engine_path.is_file() and not args.force:
        print(f"cached engine (configuration {config.tag()}, {args.precision}, {device_name}): {engine_path}")
        return 0

    if args.precision == "fp8":
        major, minor = torch.cuda.get_device_capability()
        if (major, minor) < (8, 9):
            print(f"export_engine: FP8 needs compute capability >= 8.9, {device_name} is {major}.{minor}")
            return 2
        if args.onnx is None or not has_fp8_qdq(Path(args.onnx)):
            print(
                "export_engine: FP8 needs an ONNX with FP8 Q/DQ nodes (quantise with NVIDIA ModelOpt, "
                "pass it "
                "with --onnx); this tool does not quantise",
                file=sys.stderr,
            )
            return 2

    # Each export in its own directory (one step.onnx + one step.onnx.data), removed after the build.
    export_dir = engine_path.with_suffix(".onnx.d")
    onnx_path = Path(args.onnx) if args.onnx else export_dir / "step.onnx"
    try:
        if args.onnx is None:
            from diffusers import DiffusionPipeline

            from cosmos_ros.runtime.onnx_export import export_step_onnx

            # The graph's types are the engine's (strongly typed): export in the precision asked for.
            dtype = torch.bfloat16 if args.precision == "bf16" else torch.float16
            print(f"[1/3] loading {args.model} ({dtype})", flush=True)
            pipe = DiffusionPipeline.from_pretrained(args.model, torch_dtype=dtype).to("cuda")
            print(f"[2/3] exporting the step for {config.tag()} to {onnx_path}", flush=True)
            export_step_onnx(pipe, config, onnx_path, opset=EXPORT_OPSET)
            del pipe
            # On a Jetson's unified memory the torch weights would stay resident through the TensorRT build
            # until the collector frees the pipeline's reference cycles.
            gc.collect()
            torch.cuda.empty_cache()
            print(f"      export done: {_peak_memory_note()}", flush=True)
        print(f"[3/3] building the {args.precision} engine on {device_name}", flush=True)
        build_engine(
            trt,
            onnx_path,
            engine_path,
            args.precision,
            args.workspace_gib,
            timing_cache=cache / "timing.cache",
        )
        print(f"      build done: {_peak_memory_note()}", flush=True)
        if args.onnx is None:
            shutil.rmtree(export_dir, ignore_errors=True)
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"export_engine: {exc}", file=sys.stderr)
        return 1
    meta = {
        "config": config.__dict__,
        "precision": args.precision,
        "device": device_name,
        "tensorrt": trt.__version__,
        "onnx": str(onnx_path) if args.onnx else None,
        "source_fingerprint": source,
        "opset": EXPORT_OPSET,
    }
    engine_path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    print(engine_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
