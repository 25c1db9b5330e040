"""Per-layer agreement of the FP8 generation expert with bf16 and fp32 on the same inputs (issue 14).

Why per layer: with random weights, a multi-step sampler amplifies any per-layer difference into a different
trajectory, so end-to-end action agreement says little about FP8. Here every decoder layer of the generation
pathway gets the *same* input (the bf16 run's input to that layer, i.e. teacher-forced) and its output is
computed three ways: fp32 (weights and math upcast: the reference), bf16 (what the fast path runs) and FP8
(``cosmos_ros.runtime.fp8``). A layer's output is ``x + update``; the residual ``x`` passes through unchanged,
so the metrics are taken on the *update* (``output - input``), where the quantisation error lives: cosine
similarity and relative L2 error against fp32. Then the error of the final hidden state when all 36 layers
run in one precision (propagated, not teacher-forced) for several choices of layers kept in bf16.

Inputs: a deployment-configuration plan (chunk 32, guidance 3, fps 15) of the random-weight Nano-size model,
its initial state with the timestep embedding of the first and of the last step. Random weights: this
measures arithmetic agreement only, not planning quality.

Usage (GPU): ``python -m cosmos_ros.tools.fp8_agreement --out bench/fp8_layer_agreement_<date>.txt``;
``--size small`` runs on CPU (``_scaled_mm`` emulated there), as a smoke test of the script.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import sys
from typing import Any

import numpy as np
import torch

from cosmos_ros.runtime.fast import FastPolicyBackend, _gen_layer, _StepBuffers
from cosmos_ros.runtime.fp8 import fp8_linear, quantize_layer_weights


def _metrics(a: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(cosine similarity, relative L2 error) of ``a`` against ``ref``, in float64."""
    x = a.double().flatten()
    y = ref.double().flatten()
    cos = float(torch.dot(x, y) / (x.norm() * y.norm()).clamp(min=1e-300))
    rel = float((x - y).norm() / y.norm().clamp(min=1e-300))
    return cos, rel


def _upcast(weights: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(None if w is None else w.float() for w in weights)


def layer_inputs(
    backend: FastPolicyBackend, state: torch.Tensor, temb: torch.Tensor, layout: Any
) -> list[Any]:
    """Each layer's input hidden state in the bf16 step (records through the backend's layer function)."""
    seen: list[torch.Tensor] = []

    def record(x: torch.Tensor, *a: Any, **k: Any) -> torch.Tensor:
        seen.append(x.detach().clone())
        return _gen_layer(x, *a, **k)

    bufs = _StepBuffers(layout)
    bufs.load(layout)
    backend._layer_fn = record
    try:
        backend._gen_step(state, temb, layout, bufs)
    finally:
        backend._layer_fn = _gen_layer
    return [seen, bufs]


@torch.no_grad()
def run(pipe: Any, tier: int, hw: tuple[int, int], prompt: str, keep_sets: list[tuple[int, ...]]) -> str:
    from cosmos_ros.runtime.backend import PolicyRequest

    backend = FastPolicyBackend(pipe, use_cuda_graph=False, use_compile=False, cache_text=False)
    img = np.random.default_rng(0).integers(0, 256, (hw[0], hw[1], 3), dtype=np.uint8)
    req = PolicyRequest(
        image=img,
        prompt=prompt,
        domain_name="bridge_orig_lerobot",
        chunk_size=32,
        resolution_tier=tier,
        num_inference_steps=4,
        guidance_scale=3.0,
        fps=15.0,
        seed=0,
    )
    plan = backend.prepare(req, torch.Generator("cpu").manual_seed(0))
    layout = plan.layouts[0]
    n_layers = len(backend._layer_weights)
    w16 = backend._layer_weights
    w8 = [quantize_layer_weights(w) for w in w16]
    lin8 = functools.partial(_gen_layer, linear=fp8_linear)
    h, kv, d = backend.heads, backend.kv_heads, backend.head_dim
    common = (h, kv, d, backend.eps, backend.nemotron)
    lines: list[str] = []
    p = lines.append
    p(
        f"== tier {tier} ({hw[0]}x{hw[1]}), deployment configuration, "
        f"{layout.num_vision_tokens + layout.action_len}"
        f" generation tokens, {layout.und_len} text tokens, {n_layers} layers"
    )
    for label, step in (("first step", 0), ("last step", plan.tembs.shape[0] - 1)):
        temb = plan.tembs[step : step + 1]
        xs, bufs = layer_inputs(backend, plan.x0_state, temb, layout)
        k32 = [t.float() for t in bufs.k]
        v32 = [t.float() for t in bufs.v]
        c32, s32 = bufs.cos_gen.float(), bufs.sin_gen.float()
        p(f"-- {label} (timestep embedding {step}); per layer, teacher-forced, metrics on the layer's update")
        p("layer | bf16 vs fp32: cos, rel err | fp8 vs fp32: cos, rel err | fp8 vs bf16: rel err")
        worst: list[tuple[float, int]] = []
        for li in range(n_layers):
            x = xs[li]
            ref = _gen_layer(x.float(), k32[li], v32[li], c32, s32, _upcast(w16[li]), *common) - x.float()
            o16 = (
                _gen_layer(x, bufs.k[li], bufs.v[li], bufs.cos_gen, bufs.sin_gen, w16[li], *common) - x
            ).float()
            o8 = (lin8(x, bufs.k[li], bufs.v[li], bufs.cos_gen, bufs.sin_gen, w8[li], *common) - x).float()
            c16, r16 = _metrics(o16, ref)
            c8, r8 = _metrics(o8, ref)
            _, r816 = _metrics(o8, o16)
            worst.append((r8, li))
            p(f"{li:5d} | {c16:.6f}, {r16:.2e} | {c8:.6f}, {r8:.2e} | {r816:.2e}")
        worst.sort(reverse=True)
        p("worst fp8 layers (rel err vs fp32): " + ", ".join(f"{li}: {r:.2e}" for r, li in worst[:5]))
        # Propagated: all layers in one precision from the same first-layer input.
        x0 = xs[0]
        x32 = x0.float()
        for li in range(n_layers):
            x32 = _gen_layer(x32, k32[li], v32[li], c32, s32, _upcast(w16[li]), *common)
        x16 = x0
        for li in range(n_layers):
            x16 = _gen_layer(x16, bufs.k[li], bufs.v[li], bufs.cos_gen, bufs.sin_gen, w16[li], *common)
        c, r = _metrics(x16.float(), x32)
        p(f"propagated through all layers, final hidden state vs fp32: bf16 cos {c:.6f}, rel err {r:.2e}")
        for keep in keep_sets:
            x8 = x0
            for li in range(n_layers):
                if li in keep:
                    x8 = _gen_layer(x8, bufs.k[li], bufs.v[li], bufs.cos_gen, bufs.sin_gen, w16[li], *common)
                else:
                    x8 = lin8(x8, bufs.k[li], bufs.v[li], bufs.cos_gen, bufs.sin_gen, w8[li], *common)
            c, r = _metrics(x8.float(), x32)
            _, r_vs16 = _metrics(x8.float(), x16.float())
            p(
                f"propagated, fp8 with layers {list(keep) or 'none'} in bf16: cos {c:.6f}, rel err vs fp32 "
                f"{r:.2e}, vs bf16 {r_vs16:.2e}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from cosmos_ros.tools.bench_fast import NANO, SMALL, TIERS, build_pipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("nano", "small"), default="nano")
    parser.add_argument("--tiers", default="256,480")
    parser.add_argument("--prompt", default="pick up the red cube and place it in the blue bowl")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    size = NANO if args.size == "nano" else SMALL
    pipe = build_pipeline(size, device, dtype, args.prompt)
    n = size.layers
    keep_sets = sorted(
        {tuple(sorted(set(k))) for k in ((), (0,), (n - 1,), (0, n - 1), (0, 1, n - 2, n - 1))}, key=len
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    text = [
        f"cosmos_ros FP8 per-layer agreement, {now:%Y-%m-%d %H:%M UTC}; device {name}; "
        f"torch {torch.__version__}; "
        f"model {size.name} ({dtype}); FP8 = e4m3 weights (per-channel scales) x e4m3 activations "
        "(per-token dynamic scales), torch._scaled_mm, bf16 out"
    ]
    for tier in (int(t) for t in args.tiers.split(",")):
        text.append(run(pipe, tier, TIERS[tier], args.prompt, keep_sets))
        print(text[-1], file=sys.stderr, flush=True)
    out = "\n".join(text) + "\n"
    print(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(out)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
