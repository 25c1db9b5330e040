"""Export the fast path's denoiser step to ONNX for one fixed configuration (the TensorRT input).

Why one step and not the whole call: the sampling loop (noise, sampler coefficients, guidance) is a few
vector operations per step and stays in Python around the engine; the step is where all the weights and
FLOPs are. An engine has static shapes, so a configuration fixes them: resolution tier and input image size
(they fix the latent grid), chunk size (action tokens and latent frames) and a *prompt-length bucket*: text
keys/values enter padded to the bucket, with an additive key mask that gives padded keys zero weight, so
every prompt up to the bucket's length runs on one engine.

The exported graph computes exactly ``FastPolicyBackend._gen_step`` (the same Python runs under the tracer):

    inputs:  state [numel] f32 (vision + action latents), temb [1, hidden], k_und / v_und [L, H, bucket, D],
             key_mask [1, 1, 1, bucket + gen] (0 or a large negative), cos_gen / sin_gen [gen, D],
             w_in [A, hidden], b_in [hidden], w_out [hidden, A], b_out [A] (the embodiment's action heads)
    output:  velocity [numel] f32
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from cosmos_ros.runtime.backend import CHUNK_MULTIPLE, RESOLUTION_TIERS, PolicyRequest
from cosmos_ros.runtime.fast import FastPolicyBackend, _PlanLayout

INPUT_NAMES = (
    "state",
    "temb",
    "k_und",
    "v_und",
    "key_mask",
    "cos_gen",
    "sin_gen",
    "w_in",
    "b_in",
    "w_out",
    "b_out",
)
OUTPUT_NAMES = ("velocity",)


@dataclass(frozen=True)
class StepExportConfig:
    """The static shapes of one exported denoiser step.

    Attributes:
        resolution_tier: Conditioning canvas tier (one of ``RESOLUTION_TIERS``).
        image_height: Input image height in pixels (with the tier, fixes the latent grid).
        image_width: Input image width in pixels.
        chunk_size: Action chunk (a positive multiple of 4).
        text_bucket: Text tokens are padded to this length; longer prompts need a larger bucket.
        domain_name: Embodiment used to trace the export. Its action heads are inputs, but its raw action
            width (velocities beyond it are zeroed) is traced in: the engine serves domains of that width.
    """

    resolution_tier: int = 256
    image_height: int = 256
    image_width: int = 256
    chunk_size: int = 16
    text_bucket: int = 256
    domain_name: str = "umi"

    def __post_init__(self) -> None:
        if self.resolution_tier not in RESOLUTION_TIERS:
            raise ValueError(f"resolution_tier must be one of {RESOLUTION_TIERS}, got {self.resolution_tier}")
        if self.image_height < 2 or self.image_width < 2:
            raise ValueError(f"image size must be at least 2x2, got {self.image_width}x{self.image_height}")
        if self.chunk_size <= 0 or self.chunk_size % CHUNK_MULTIPLE != 0:
            raise ValueError(
                f"chunk_size must be a positive multiple of {CHUNK_MULTIPLE}, got {self.chunk_size}"
            )
        if self.text_bucket < 1:
            raise ValueError(f"text_bucket must be >= 1, got {self.text_bucket}")

    def tag(self) -> str:
        """A file-name-safe id of the configuration (engine caches key on it)."""
        return (
            f"tier{self.resolution_tier}_{self.image_height}x{self.image_width}"
            f"_chunk{self.chunk_size}_text{self.text_bucket}"
        )


def sanitize(name: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"NVIDIA_H100_80GB_HBM3"`` (for cache file names)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")


class DenoiserStep(torch.nn.Module):
    """The fast path's step as a module with tensor inputs only (what the ONNX tracer needs)."""

    def __init__(self, backend: FastPolicyBackend, layout: _PlanLayout):
        super().__init__()
        self.transformer = backend.tr  # registered so its weights export as initializers
        self.backend = backend
        self.layout = layout

    def forward(
        self,
        state: torch.Tensor,
        temb: torch.Tensor,
        k_und: torch.Tensor,
        v_und: torch.Tensor,
        key_mask: torch.Tensor,
        cos_gen: torch.Tensor,
        sin_gen: torch.Tensor,
        w_in: torch.Tensor,
        b_in: torch.Tensor,
        w_out: torch.Tensor,
        b_out: torch.Tensor,
    ) -> torch.Tensor:
        bufs = SimpleNamespace(
            k=list(k_und.unbind(0)),
            v=list(v_und.unbind(0)),
            cos_gen=cos_gen,
            sin_gen=sin_gen,
            w_in=w_in,
            b_in=b_in,
            w_out=w_out,
            b_out=b_out,
        )
        return self.backend._gen_step(state, temb, self.layout, bufs, mask=key_mask)


def step_inputs(
    backend: FastPolicyBackend, layout: _PlanLayout, state: torch.Tensor, temb: torch.Tensor, text_bucket: int
) -> dict[str, torch.Tensor]:
    """The engine's inputs for one step of a plan: text keys/values padded to ``text_bucket`` plus the mask.

    Raises:
        ValueError: The prompt has more text tokens than the bucket holds.
    """
    u = layout.und_len
    if u > text_bucket:
        raise ValueError(f"prompt has {u} text tokens; this configuration's text_bucket is {text_bucket}")
    k = torch.stack(layout.k_und)  # [L, H, u, D]
    v = torch.stack(layout.v_und)
    pad = text_bucket - u
    if pad:
        k = torch.nn.functional.pad(k, (0, 0, 0, pad))
        v = torch.nn.functional.pad(v, (0, 0, 0, pad))
    n_gen = layout.num_vision_tokens + layout.action_len
    mask = torch.zeros(text_bucket + n_gen, dtype=backend.dtype, device=k.device)
    mask[u:text_bucket] = torch.finfo(backend.dtype).min
    mask = mask.view(1, 1, 1, -1)  # broadcast over batch, heads and queries
    return {
        "state": state,
        "temb": temb,
        "k_und": k.contiguous(),
        "v_und": v.contiguous(),
        "key_mask": mask,
        "cos_gen": layout.cos_gen,
        "sin_gen": layout.sin_gen,
        "w_in": layout.w_in.contiguous(),
        "b_in": layout.b_in.contiguous(),
        "w_out": layout.w_out.contiguous(),
        "b_out": layout.b_out.contiguous(),
    }


def example_plan(
    backend: FastPolicyBackend, config: StepExportConfig, prompt: str = "pick up the cube"
) -> Any:
    """Prepare a plan of ``config``'s shapes (a grey image), to trace the export and to test it."""
    request = PolicyRequest(
        image=np.full((config.image_height, config.image_width, 3), 128, dtype=np.uint8),
        prompt=prompt,
        domain_name=config.domain_name,
        chunk_size=config.chunk_size,
        resolution_tier=config.resolution_tier,
        num_inference_steps=2,
    )
    return backend.prepare(request, torch.Generator("cpu").manual_seed(0))


@torch.no_grad()
def export_step_onnx(
    pipe: Any,
    config: StepExportConfig,
    out_path: str | Path,
    opset: int = 17,
    prompt: str = "pick up the cube",
) -> Path:
    """Write the denoiser step of ``pipe`` for ``config`` to ``out_path`` (ONNX; external data past 2 GB).

    Returns:
        The path written.
    """
    backend = FastPolicyBackend(pipe, use_cuda_graph=False, use_compile=False, cache_text=False)
    plan = example_plan(backend, config, prompt)
    layout = plan.layouts[0]
    inputs = step_inputs(backend, layout, plan.x0_state, plan.tembs[:1], config.text_bucket)
    module = DenoiserStep(backend, layout).eval()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        module,
        tuple(inputs[name] for name in INPUT_NAMES),
        str(out),
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
        opset_version=opset,
        dynamo=False,
        do_constant_folding=True,
    )
    return out


def engine_cache_path(
    cache_dir: str | Path, config: StepExportConfig, precision: str, device_name: str, trt_version: str
) -> Path:
    """Where the engine of ``config`` built for ``device_name`` with TensorRT ``trt_version`` is cached.

    Why all four in the name: an engine is only valid for the shapes it was built for, on the GPU model and
    TensorRT version that built it; anything else must rebuild rather than load a mismatched file.
    """
    if precision not in ENGINE_PRECISIONS:
        raise ValueError(f"precision must be one of {ENGINE_PRECISIONS}, got {precision!r}")
    name = (
        f"cosmos3_step_{config.tag()}_{precision}_{sanitize(device_name)}_trt{sanitize(trt_version)}.engine"
    )
    return Path(cache_dir) / name


ENGINE_PRECISIONS = ("bf16", "fp16", "fp8")
