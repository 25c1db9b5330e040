"""Build (or find in the cache) a TensorRT engine of the Cosmos 3 denoiser step for one configuration.

Why a tool run on the robot: a TensorRT engine is tied to the GPU model and the TensorRT version that built
it, so it is built where it runs (Jetson Orin / Thor) and cached under a name that carries the configuration,
the precision, the device name and the TensorRT version (``onnx_export.engine_cache_path``).

Steps: load the pipeline (``from_pretrained``, offline) -> export the step to ONNX
(``onnx_export.export_step_onnx``) -> parse it with TensorRT's ONNX parser -> build with the chosen precision,
showing TensorRT's build phases as they progress -> write the engine atomically.

Precisions: ``bf16`` (ONNX exported from the bf16 model, strongly typed network: the types are the model's),
``fp16`` (ONNX exported in fp32, TensorRT may pick fp16 kernels), ``fp8`` (Hopper / Ada / Thor-class GPUs,
compute capability >= 8.9, and only from an ONNX that already carries FP8 Q/DQ nodes, e.g. quantised with
NVIDIA ModelOpt, passed with ``--onnx``: this tool does not quantise).

Usage: ``export_engine --model /path/to/Cosmos3-Nano --tier 256 --image-size 256x256 --chunk 16
--text-bucket 256 --precision bf16``. Exit codes: 0 built or cached, 2 bad arguments or TensorRT missing,
1 build failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from cosmos_ros.runtime.onnx_export import ENGINE_PRECISIONS, StepExportConfig, engine_cache_path

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


def _has_fp8_qdq(onnx_path: Path) -> bool:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def build_engine(
    trt: Any, onnx_path: Path, engine_path: Path, precision: str, workspace_gib: float, strongly_typed: bool
) -> None:
    """Parse ``onnx_path`` and write a serialised engine to ``engine_path`` (atomically)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    print(f"[trt] parsing {onnx_path}", flush=True)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if not strongly_typed and precision == "fp16":  # strongly typed networks take their types from the ONNX
        config.set_flag(trt.BuilderFlag.FP16)
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT build failed (see the messages above)")
    tmp = engine_path.with_suffix(".engine.tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(engine_path)
    print(f"[trt] built {engine_path} in {time.perf_counter() - t0:.0f}s", flush=True)


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
    engine_path = engine_cache_path(cache, config, args.precision, device_name, trt.__version__)
    if engine_path.is_file() and not args.force:
        print(f"cached engine (configuration {config.tag()}, {args.precision}, {device_name}): {engine_path}")
        return 0

    if args.precision == "fp8":
        major, minor = torch.cuda.get_device_capability()
        if (major, minor) < (8, 9):
            print(f"export_engine: FP8 needs compute capability >= 8.9, {device_name} is {major}.{minor}")
            return 2
        if args.onnx is None or not _has_fp8_qdq(Path(args.onnx)):
            print(
                "export_engine: FP8 needs an ONNX with FP8 Q/DQ nodes (quantise with NVIDIA ModelOpt, "
                "pass it "
                "with --onnx); this tool does not quantise",
                file=sys.stderr,
            )
            return 2

    onnx_path = Path(args.onnx) if args.onnx else engine_path.with_suffix(".onnx")
    try:
        if args.onnx is None:
            from diffusers import DiffusionPipeline

            from cosmos_ros.runtime.onnx_export import export_step_onnx

            dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
            print(f"[1/3] loading {args.model} ({dtype})", flush=True)
            pipe = DiffusionPipeline.from_pretrained(args.model, torch_dtype=dtype).to("cuda")
            print(f"[2/3] exporting the step for {config.tag()} to {onnx_path}", flush=True)
            export_step_onnx(pipe, config, onnx_path)
            del pipe
            torch.cuda.empty_cache()
        print(f"[3/3] building the {args.precision} engine on {device_name}", flush=True)
        build_engine(
            trt,
            onnx_path,
            engine_path,
            args.precision,
            args.workspace_gib,
            strongly_typed=args.precision in ("bf16", "fp8"),
        )
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"export_engine: {exc}", file=sys.stderr)
        return 1
    meta = {
        "config": config.__dict__,
        "precision": args.precision,
        "device": device_name,
        "tensorrt": trt.__version__,
        "onnx": str(onnx_path),
    }
    engine_path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    print(engine_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
