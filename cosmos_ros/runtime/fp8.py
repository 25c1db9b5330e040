"""FP8 (e4m3) generation expert for the fast backend: opt-in ``precision: fp8``, bf16 stays the default.

What is quantised: the seven large linears of each generation-pathway decoder layer (q, k, v, out, gate, up,
down): 97% of the weight bytes a denoising step reads. Weights are cast to e4m3 once, at load, with one scale
per output channel; activations get one dynamic scale per token at every call. The product runs on the FP8
tensor cores through ``torch._scaled_mm`` (row-wise scales, bf16 out). Everything else stays in the model's
dtype: norms, rotary, attention (its keys/values are bf16), the patch and action projections, the timestep
embedding and the text (understanding) pathway, which runs once per goal.

Why compiled: per call, the activation quantisation (abs-max over the row, divide, cast) is three
elementwise passes; run eagerly they cost more than the FP8 GEMM saves (issue 14 measured 0.49x). Under
``torch.compile`` Inductor fuses them into the RMSNorm or SwiGLU kernel that produces the activation, so the
FP8 layer reads each activation once, like the bf16 layer does.

Why per-channel weight scales and per-token activation scales: e4m3 has 3 mantissa bits and a range of
+-448; one scale per tensor lets a few outlier rows set the scale of all others. Row-wise scaling is what
``_scaled_mm`` supports on Hopper/Ada/Blackwell without extra passes.

Hardware: FP8 tensor cores exist on compute capability >= 8.9 (Ada, Hopper, Blackwell incl. Jetson Thor). On
anything else (CPU, Ampere incl. Jetson Orin) ``apply_fp8`` refuses with ``Fp8UnsupportedError`` naming the
device: there is no silent fallback, because a user who asked for FP8 sized memory for it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import torch
from torch.nn import functional

from cosmos_ros.runtime.fast import FastPolicyBackend, _gen_layer
from cosmos_ros.runtime.policy import PRECISIONS  # the registry lives where configuration reads it

E4M3_MAX = 448.0
# Indices of the large linears' weights in ``FastPolicyBackend._weights_of``'s tuple (biases stay as is).
_LINEAR_SLOTS = {"q": 1, "k": 3, "v": 5, "out": 9, "gate": 12, "up": 13, "down": 14}


class Fp8UnsupportedError(ValueError):
    """FP8 was asked for on a device without FP8 tensor cores."""


def fp8_unsupported_reason(device: torch.device | str) -> str | None:
    """Why ``device`` cannot run the FP8 path, or ``None`` if it can (CUDA, compute capability >= 8.9)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return f"device {dev} has no FP8 tensor cores (FP8 needs a CUDA GPU of compute capability >= 8.9)"
    if not torch.cuda.is_available():
        return f"device {dev}: CUDA is not available"
    major, minor = torch.cuda.get_device_capability(dev)
    if (major, minor) < (8, 9):
        name = torch.cuda.get_device_name(dev)
        return (
            f"device {dev} ({name}) is compute capability {major}.{minor}; FP8 tensor cores need >= 8.9 "
            "(Ada, Hopper, Blackwell, Jetson Thor). Jetson Orin (8.7) has none: use precision bf16"
        )
    return None


def quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``w [N, K]`` -> (e4m3 ``[N, K]``, fp32 per-output-channel scale ``[1, N]``), ``w ~= w8 * scale``."""
    amax = w.detach().float().abs().amax(dim=1, keepdim=True).clamp(min=1e-12)
    scale = amax / E4M3_MAX
    w8 = (w.detach().float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return w8.contiguous(), scale.reshape(1, -1).contiguous()


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-row (per-token) quantisation: ``x [M, K]`` -> (e4m3 ``[M, K]``, fp32 scale ``[M, 1]``)."""
    xf = x.float()
    scale = xf.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / E4M3_MAX
    return (xf / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn), scale


def fp8_linear(x: torch.Tensor, w: Any, b: torch.Tensor | None = None) -> torch.Tensor:
    """``functional.linear`` for a weight that is either a plain tensor or a ``quantize_weight`` pair."""
    if isinstance(w, torch.Tensor):
        return functional.linear(x, w, b)
    if x.device.type != "cuda":
        # CPU builds of torch differ in which ``_scaled_mm`` scalings they implement (2.11: per-tensor only);
        # off the GPU the same quantisation runs emulated, for tests and export checks.
        return dequantize_linear(x, w, b)
    w8, w_scale = w
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    x8, x_scale = quantize_rows(x2)
    y = torch._scaled_mm(x8, w8.t(), scale_a=x_scale, scale_b=w_scale, out_dtype=x.dtype)
    if b is not None:
        y = y + b
    return y.reshape(*shape[:-1], y.shape[-1])


def dequantize_linear(x: torch.Tensor, w: Any, b: torch.Tensor | None = None) -> torch.Tensor:
    """Reference for ``fp8_linear`` in the input's dtype (quantise-dequantise, then a plain matmul).

    Used to check ``fp8_linear`` where ``_scaled_mm`` runs (tests, the per-layer agreement tool).
    """
    if isinstance(w, torch.Tensor):
        return functional.linear(x, w, b)
    w8, w_scale = w
    x8, x_scale = quantize_rows(x.reshape(-1, x.shape[-1]))
    xd = (x8.float() * x_scale).reshape(x.shape)
    wd = w8.float() * w_scale.reshape(-1, 1)
    y = functional.linear(xd, wd).to(x.dtype)
    return y + b if b is not None else y


def quantize_layer_weights(
    weights: tuple[torch.Tensor | None, ...], slots: Iterable[str] = tuple(_LINEAR_SLOTS)
) -> tuple[Any, ...]:
    """A ``_weights_of`` tuple with the named linears replaced by ``quantize_weight`` pairs."""
    out: list[Any] = list(weights)
    for name in slots:
        i = _LINEAR_SLOTS[name]
        if out[i] is not None:
            out[i] = quantize_weight(out[i])
    return tuple(out)


def default_bf16_layers(num_layers: int) -> tuple[int, ...]:
    """Layers kept in bf16 by default: none (bench/fp8_layer_agreement_* measured no layer that needs it)."""
    del num_layers
    return ()


def apply_fp8(
    backend: FastPolicyBackend,
    bf16_layers: Iterable[int] | None = None,
    free_bf16_weights: bool = False,
    check_device: bool = True,
) -> dict[str, Any]:
    """Switch ``backend``'s generation step to FP8 linears (in place).

    Args:
        backend: A ``FastPolicyBackend`` (compiled on CUDA unless it was built with ``use_compile=False``).
        bf16_layers: Decoder layer indices that keep their bf16 weights (default ``default_bf16_layers``).
        free_bf16_weights: Drop the bf16 copies of the quantised weights from the pipeline's modules (saves
            their memory; the stock pipeline and ``FastPolicyBackend``s built later can then no longer run the
            generation pathway: only for a process that plans with this backend alone).
        check_device: Refuse devices without FP8 tensor cores (tests turn it off to run the arithmetic on CPU,
            where ``_scaled_mm`` is emulated).

    Returns:
        A summary: quantised layer count, FP8 weight bytes, bf16 bytes kept.

    Raises:
        Fp8UnsupportedError: The backend's device has no FP8 tensor cores.
    """
    if check_device:
        reason = fp8_unsupported_reason(backend.device)
        if reason is not None:
            raise Fp8UnsupportedError(f"precision fp8: {reason}")
    n = len(backend._layer_weights)
    keep = set(default_bf16_layers(n) if bf16_layers is None else bf16_layers)
    bad = sorted(i for i in keep if not 0 <= i < n)
    if bad:
        raise ValueError(f"bf16_layers: {bad} out of range for {n} layers")
    fp8_bytes = 0
    for li in range(n):
        if li in keep:
            continue
        q = quantize_layer_weights(backend._layer_weights[li])
        backend._layer_weights[li] = q
        fp8_bytes += sum(t[0].numel() for t in q if isinstance(t, tuple))
    if free_bf16_weights:
        _free_quantised(backend, keep)
    layer_fn = functools.partial(_gen_layer, linear=fp8_linear)
    compiled = backend._layer_fn is not _gen_layer
    backend._layer_fn = torch.compile(layer_fn, dynamic=False, fullgraph=True) if compiled else layer_fn
    backend._graphs.clear()  # graphs captured over the bf16 step must not replay
    return {"fp8_layers": n - len(keep), "bf16_layers": sorted(keep), "fp8_weight_bytes": fp8_bytes}


def _free_quantised(backend: FastPolicyBackend, keep: set[int]) -> None:
    """Replace the bf16 parameters of quantised linears by empty tensors (their memory is released)."""
    for li, layer in enumerate(backend.tr.layers):
        if li in keep:
            continue
        attn, mlp = layer.self_attn, layer.mlp_moe_gen
        mods = [
            attn.add_q_proj,
            attn.add_k_proj,
            attn.add_v_proj,
            attn.to_add_out,
            mlp.up_proj,
            mlp.down_proj,
        ]
        if getattr(mlp, "gate_proj", None) is not None:
            mods.append(mlp.gate_proj)
        for m in mods:
            m.weight = torch.nn.Parameter(m.weight.new_empty(0), requires_grad=False)


def make_precision_backend(pipe: Any, precision: str = "bf16", **kwargs: Any) -> FastPolicyBackend:
    """A ``FastPolicyBackend`` at ``precision`` (``bf16``: the model's own dtype; ``fp8``: ``apply_fp8``).

    Raises:
        ValueError: Unknown precision.
        Fp8UnsupportedError: ``fp8`` on a device without FP8 tensor cores.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp8":
        # Refuse before building (and compiling) anything.
        param = next(pipe.transformer.layers.parameters())
        reason = fp8_unsupported_reason(param.device)
        if reason is not None:
            raise Fp8UnsupportedError(f"precision fp8: {reason}")
    backend = FastPolicyBackend(pipe, **kwargs)
    if precision == "fp8":
        apply_fp8(backend)
    return backend


__all__ = [
    "E4M3_MAX",
    "PRECISIONS",
    "Fp8UnsupportedError",
    "apply_fp8",
    "dequantize_linear",
    "fp8_linear",
    "fp8_unsupported_reason",
    "make_precision_backend",
    "quantize_layer_weights",
    "quantize_rows",
    "quantize_weight",
]
