"""TensorRT policy backend: the fast path's sampling loop with the denoiser step run by a TensorRT engine.

Why reuse the fast path: everything around the step (frame encoding, text keys/values, noise, sampler
coefficients, guidance) is the same code as ``FastPolicyBackend``; only the per-step transformer evaluation
changes, and it is exactly the graph ``cosmos_ros.runtime.onnx_export`` exported. Engines are built by
``cosmos_ros.tools.export_engine`` for one configuration (tier, input size, chunk, text bucket) on the device
that runs them (Jetson Orin / Thor, or an x86 GPU).

This module imports ``tensorrt`` at import time on purpose: the runtime's backend registry imports it when
``backend: tensorrt`` is chosen, and a missing TensorRT then fails there with an install hint.

Not run on the development machines of this project (no TensorRT there): ``test/test_tensorrt_backend.py``
exercises it only where ``tensorrt`` imports and CUDA is present, and skips with that reason elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

try:
    import tensorrt as trt
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError(
        "the tensorrt backend needs NVIDIA TensorRT's Python package: `pip install tensorrt` on an x86 GPU "
        "machine, or JetPack's python3-libnvinfer on Jetson"
    ) from exc

from cosmos_ros.runtime.backend import PolicyRequest
from cosmos_ros.runtime.fast import FastPolicyBackend, PreparedPlan, _PlanLayout
from cosmos_ros.runtime.onnx_export import INPUT_NAMES, OUTPUT_NAMES, StepExportConfig, step_inputs

_TRT_TO_TORCH = {
    trt.DataType.FLOAT: torch.float32,
    trt.DataType.HALF: torch.float16,
    trt.DataType.BF16: torch.bfloat16,
    trt.DataType.INT32: torch.int32,
}


class TensorRTStep:
    """A deserialised engine of the denoiser step, run on torch CUDA tensors (no copies through the host)."""

    def __init__(self, engine_path: str | Path, device: torch.device):
        path = Path(engine_path)
        if not path.is_file():
            raise ValueError(f"engine_path: no engine file at {path} (build one with export_engine)")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ValueError(
                f"engine_path: TensorRT {trt.__version__} could not load {path} (built by another TensorRT "
                "version or for another GPU? rebuild it with export_engine)"
            )
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if sorted(names) != sorted(INPUT_NAMES + OUTPUT_NAMES):
            raise ValueError(
                f"engine_path: {path} has tensors {names}, expected {INPUT_NAMES + OUTPUT_NAMES}"
            )
        self.context = self.engine.create_execution_context()
        self.dtypes = {n: _TRT_TO_TORCH[self.engine.get_tensor_dtype(n)] for n in names}
        self.shapes = {n: tuple(self.engine.get_tensor_shape(n)) for n in names}
        self.out = torch.empty(self.shapes["velocity"], dtype=self.dtypes["velocity"], device=device)
        # A stream of its own: on the legacy default stream TensorRT adds synchronisation, warns every call.
        self.stream = torch.cuda.Stream(device=device) if device.type == "cuda" else None
        self._keep: list[torch.Tensor] = []

    def cast_static(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inputs cast to the engine's types once (per plan), so steps do not re-cast the k/v tensors."""
        return {n: t.to(self.dtypes[n]).contiguous() for n, t in feeds.items()}

    def _bind(self, name: str, t: torch.Tensor) -> None:
        if not self.context.set_tensor_address(name, t.data_ptr()):
            raise RuntimeError(f"TensorRT refused the address of {name!r}")

    def __call__(self, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run one step; returns a new float32 tensor (never the engine's output buffer itself)."""
        self._keep = []
        for name in INPUT_NAMES:
            t = feeds[name]
            if t.dtype != self.dtypes[name] or not t.is_contiguous():
                t = t.to(self.dtypes[name]).contiguous()
            if tuple(t.shape) != self.shapes[name]:
                raise ValueError(
                    f"{name}: shape {tuple(t.shape)} does not match the engine's {self.shapes[name]}"
                )
            self._keep.append(t)  # alive until the engine has read it
            self._bind(name, t)
        self._bind("velocity", self.out)
        if self.stream is None:
            handle = 0
        else:
            self.stream.wait_stream(torch.cuda.current_stream(self.out.device))
            handle = self.stream.cuda_stream
        if not self.context.execute_async_v3(handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        if self.stream is not None:
            torch.cuda.current_stream(self.out.device).wait_stream(self.stream)
        # A copy: the next step overwrites self.out while the caller may still hold this velocity.
        return self.out.to(torch.float32, copy=True)


def check_request_matches_engine(request: PolicyRequest, config: StepExportConfig) -> None:
    """Refuse requests the engine was not built for: other shapes, or a domain of another raw action width
    (the width is traced into the engine: it zeroes velocities beyond it, so another width would silently
    zero the wrong action columns).

    Raises:
        ValueError: Naming the mismatching fields.
    """
    from cosmos_ros.runtime.loader import domain_raw_width

    got = (request.resolution_tier, *request.image.shape[:2], request.chunk_size)
    want = (config.resolution_tier, config.image_height, config.image_width, config.chunk_size)
    if got != want:
        raise ValueError(f"request (tier, height, width, chunk) = {got} does not match the engine's {want}")
    if request.domain_name != config.domain_name:
        w_req, w_eng = domain_raw_width(request.domain_name), domain_raw_width(config.domain_name)
        if w_req != w_eng:
            raise ValueError(
                f"domain_name {request.domain_name!r} has raw action width {w_req}; the engine was built for "
                f"{config.domain_name!r} (width {w_eng}): build an engine for this domain"
            )


class TensorRTPolicyBackend(FastPolicyBackend):
    """``FastPolicyBackend`` whose denoiser step runs in a TensorRT engine built for ``config``.

    Args:
        pipe: The loaded pipeline (VAE, tokenizer, text pathway and heads still run in torch).
        engine_path: Engine file from ``export_engine`` for ``config``.
        config: The configuration the engine was built for; requests of other shapes are rejected.

    Raises:
        ValueError: Not on a CUDA device, or the engine cannot be loaded.
    """

    name = "tensorrt"

    def __init__(self, pipe: Any, engine_path: str | Path, config: StepExportConfig, **kwargs: Any) -> None:
        super().__init__(pipe, use_cuda_graph=False, use_compile=False, **kwargs)
        if self.device.type != "cuda":
            raise ValueError(
                f"device: the tensorrt backend needs the pipeline on CUDA, it is on {self.device}"
            )
        self.config = config
        self.step = TensorRTStep(engine_path, self.device)

    def prepare(
        self, request: PolicyRequest, generator: torch.Generator, timings: dict[str, float] | None = None
    ) -> PreparedPlan:
        check_request_matches_engine(request, self.config)
        return super().prepare(request, generator, timings)

    def _stepper(self, layout: _PlanLayout, slot: int = 0) -> Any:
        placeholder = torch.empty(0, device=self.device)
        static = step_inputs(self, layout, placeholder, placeholder, self.config.text_bucket)
        static = self.step.cast_static({k: v for k, v in static.items() if k not in ("state", "temb")})

        def run(state: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
            return self.step({**static, "state": state, "temb": temb})

        return run


def make_tensorrt_backend(pipe: Any, **options: Any) -> TensorRTPolicyBackend:
    """Factory for the runtime's backend registry.

    Options: ``engine_path`` (required), ``config`` (a ``StepExportConfig`` or a dict of its fields).
    """
    config = options.pop("config", None)
    if isinstance(config, dict):
        config = StepExportConfig(**config)
    if not isinstance(config, StepExportConfig):
        raise ValueError("config: the tensorrt backend needs the engine's StepExportConfig (or a dict of it)")
    engine_path = options.pop("engine_path", None)
    if engine_path is None:
        raise ValueError("engine_path: the tensorrt backend needs an engine file (see export_engine)")
    return TensorRTPolicyBackend(pipe, engine_path, config, **options)
