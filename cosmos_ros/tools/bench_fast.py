"""GPU benchmark: stock ``Cosmos3OmniPipeline`` policy call vs the fast backend, side by side, in one run.

Why this shape: the speed claim of the fast path (issue 6) is only worth something next to the stock call on
the same card, the same random weights and the same inputs, with the agreement of their outputs and the
hardware floor printed beside it. Cosmos 3 weights are not available, so the model is built with random
weights at Cosmos 3 Nano's published size directly on the GPU (no save/load). Random weights say nothing about
planning quality; they do fix every shape, byte and FLOP that decides latency.

What it prints, per resolution tier:
- per-plan latency (median, min, max of ``--repeats`` plans after one warm-up) for stock (``output_type=
  "latent"``, i.e. no video decode, the cheapest stock way to get actions) timed before the fast path ever
  ran and again interleaved with it, fast (compiled + CUDA graph), fast with a new goal each plan, fast eager;
- per-stage times (stock: transformer per step, VAE encode, measured with synchronising hooks on a separate
  call; fast: the backend's own stage timings);
- peak GPU memory of each path;
- agreement: relative L2 of the action tensor fast vs stock (same seed), and of the first decoded frame;
- the floor: weight bytes read per step / HBM bandwidth + FLOPs per step / peak bf16 rate, times the steps.

Usage (GPU machine): ``python -m cosmos_ros.tools.bench_fast --out bench/fast_inference_<device>_<date>.txt``.
``--size small`` builds a small model that also runs on CPU (a smoke test of this script, not a benchmark).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import math
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

# Published figures used for the floor (dense bf16 and FP8 tensor-core peaks, HBM bandwidth), by device-name
# fragment.
# Sources: NVIDIA H100 / H200 datasheets (SXM parts).
_DEVICE_PEAKS = {
    "H200": (989e12, 1979e12, 4.8e12),
    "H100": (989e12, 1979e12, 3.35e12),
}


@dataclass(frozen=True)
class ModelSize:
    """Transformer and VAE sizes of the benchmarked model."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    action_dim: int
    vocab: int
    vae_base_dim: int
    vae_decoder_base_dim: int
    vae_dim_mult: tuple[int, ...]
    vae_res_blocks: int
    z_dim: int

    def __post_init__(self) -> None:
        if self.heads % self.kv_heads != 0:
            raise ValueError(f"heads must be a multiple of kv_heads, got {self.heads} and {self.kv_heads}")


NANO = ModelSize(
    name="Cosmos 3 Nano size (random weights)",
    hidden=4096,
    layers=36,
    heads=32,
    kv_heads=8,
    head_dim=128,
    ffn=12288,
    action_dim=64,
    vocab=151936,
    # Wan 2.2 VAE (the 16x spatial / 4x temporal, 48-channel VAE Cosmos 3 uses).
    vae_base_dim=160,
    vae_decoder_base_dim=256,
    vae_dim_mult=(1, 2, 4, 4),
    vae_res_blocks=2,
    z_dim=48,
)
SMALL = ModelSize(
    name="small (script smoke test)",
    hidden=128,
    layers=2,
    heads=4,
    kv_heads=2,
    head_dim=32,
    ffn=256,
    action_dim=64,
    vocab=1000,
    vae_base_dim=8,
    vae_decoder_base_dim=8,
    vae_dim_mult=(1, 1, 1, 1),
    vae_res_blocks=1,
    z_dim=48,
)


def _word_tokenizer(sample_texts: list[str]) -> Any:
    """A word-level tokenizer with a chat template, built in-process.

    Why words: the prompt length drives the stock call's cost (it pushes the text through every layer at every
    step). A byte-level tokenizer would make the prompt ~4x longer than Qwen's BPE; splitting on words and
    punctuation runs gives a count close to BPE's for this JSON prompt. The benchmark prints the count.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Whitespace()
    words: set[str] = set()
    for text in sample_texts:
        words.update(w for w, _ in pre.pre_tokenize_str(text))
    vocab = {"[UNK]": 0}
    for w in sorted(words):
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|vision_start|>", "<|vision_end|>"],
    )
    fast.chat_template = (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    return fast


def build_pipeline(size: ModelSize, device: str, dtype: Any, prompt: str) -> Any:
    """Random-weight ``Cosmos3OmniPipeline`` built directly on ``device`` (no files)."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        Cosmos3OmniPipeline,
        Cosmos3OmniTransformer,
        UniPCMultistepScheduler,
    )

    torch.manual_seed(0)
    # Build in the target dtype: Nano in fp32 (61 GB) plus its bf16 copy would not fit an 80 GB card.
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with torch.device(device):
        tr: Any = Cosmos3OmniTransformer(
            hidden_size=size.hidden,
            num_hidden_layers=size.layers,
            num_attention_heads=size.heads,
            num_key_value_heads=size.kv_heads,
            head_dim=size.head_dim,
            intermediate_size=size.ffn,
            latent_channel=size.z_dim,
            patch_latent_dim=size.z_dim * 4,
            vocab_size=size.vocab,
            action_gen=True,
            action_dim=size.action_dim,
            rope_axes_dim=[
                size.head_dim // 2 - 2 * (size.head_dim * 5 // 32),
                *[size.head_dim * 5 // 32] * 2,
            ],
        )
        # The per-domain action projections are nn.Embedding (N(0, 1)); give them Linear-like fan-in scale so
        # random actions stay O(1) over 30 steps.
        for proj in (tr.action_proj_in, tr.action_proj_out):
            proj.fc.weight.data.normal_(0.0, 1.0 / math.sqrt(proj.input_size))
            proj.bias.weight.data.zero_()
        tr = tr.to(dtype)
        tr.time_embedder.float()  # the model keeps it in fp32 (_keep_in_fp32_modules)
        vae: Any = AutoencoderKLWan(
            base_dim=size.vae_base_dim,
            decoder_base_dim=size.vae_decoder_base_dim,
            z_dim=size.z_dim,
            dim_mult=list(size.vae_dim_mult),
            num_res_blocks=size.vae_res_blocks,
            temperal_downsample=[False, True, True],
            is_residual=True,
            in_channels=12,
            out_channels=12,
            patch_size=2,
            scale_factor_spatial=16,
            scale_factor_temporal=4,
            latents_mean=[0.0] * size.z_dim,
            latents_std=[1.0] * size.z_dim,
        )
        vae = vae.to(dtype)
    torch.set_default_dtype(default_dtype)
    tr.eval()
    vae.eval()
    sched = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0, num_train_timesteps=1000
    )
    # Tokenizer vocabulary from the rendered prompts (words outside it map to [UNK]; counts are unaffected).
    import json

    samples = [prompt, json.dumps({"x": prompt}), "You are a helpful assistant who will generate videos"]
    pipe: Any = Cosmos3OmniPipeline(
        transformer=tr,
        text_tokenizer=_word_tokenizer(samples),
        vae=vae,
        scheduler=sched,
        enable_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def fp32_pipeline(pipe: Any) -> Any:
    """An fp32 copy of ``pipe`` (same weight values; ~2x its GPU memory)."""
    import copy

    import torch
    from diffusers import Cosmos3OmniPipeline

    tr = copy.deepcopy(pipe.transformer).to(torch.float32)
    vae = copy.deepcopy(pipe.vae).to(torch.float32)
    p32: Any = Cosmos3OmniPipeline(
        transformer=tr,
        text_tokenizer=pipe.text_tokenizer,
        vae=vae,
        scheduler=copy.deepcopy(pipe.scheduler),
        enable_safety_checker=False,
    )
    p32.set_progress_bar_config(disable=True)
    return p32


def gen_pathway_params(tr: Any) -> tuple[int, int]:
    """(parameters read by one fast step, parameters of the text pathway read once per plan)."""
    gen = 0
    und = 0
    for layer in tr.layers:
        a = layer.self_attn
        for m in (a.add_q_proj, a.add_k_proj, a.add_v_proj, a.to_add_out, a.norm_added_q, a.norm_added_k):
            gen += sum(p.numel() for p in m.parameters())
        gen += sum(p.numel() for p in layer.mlp_moe_gen.parameters())
        gen += sum(p.numel() for p in layer.input_layernorm_moe_gen.parameters())
        gen += sum(p.numel() for p in layer.post_attention_layernorm_moe_gen.parameters())
        for m in (a.to_q, a.to_k, a.to_v, a.to_out, layer.mlp, layer.input_layernorm):
            und += sum(p.numel() for p in m.parameters())
    gen += sum(p.numel() for p in tr.proj_in.parameters()) + sum(p.numel() for p in tr.proj_out.parameters())
    return gen, und


def floor_seconds(
    tr: Any,
    evals: list[tuple[int, int]],
    steps: int,
    peak_flops: float,
    bandwidth: float,
    linear_bytes: float = 2.0,
    linear_peak: float | None = None,
) -> dict[str, float]:
    """Hardware floor of one plan: weights read once per evaluation at ``bandwidth``, FLOPs at the peak rates.

    Args:
        evals: ``(generation tokens, text tokens)`` of each transformer evaluation per step (one without
            guidance, two with: the unconditional pass has its own, shorter, text).
        linear_bytes: Bytes per weight of the generation layers' large linears (2 bf16, 1 FP8).
        linear_peak: Dense rate of those linears' products (default ``peak_flops``; the FP8 rate for FP8).
    """
    cfg = tr.config
    gen_p, und_p = gen_pathway_params(tr)
    layer_linear = 0
    a = tr.layers[0].self_attn
    for m in (a.add_q_proj, a.add_k_proj, a.add_v_proj, a.to_add_out):
        layer_linear += m.weight.numel()
    layer_linear += sum(p.numel() for p in tr.layers[0].mlp_moe_gen.parameters())
    n_layers = cfg.num_hidden_layers
    lin_params = n_layers * layer_linear
    lin_peak = peak_flops if linear_peak is None else linear_peak
    bytes_step = 0.0
    time_step = 0.0
    flops_step = 0.0
    for n_gen, n_und in evals:
        attn_flops = n_layers * 4 * n_gen * (n_gen + n_und) * cfg.num_attention_heads * cfg.head_dim
        lin_flops = n_layers * 2 * n_gen * layer_linear
        kv_bytes = n_layers * 2 * (n_und + n_gen) * cfg.num_attention_heads * cfg.head_dim * 2
        b = lin_params * linear_bytes + (gen_p - lin_params) * 2 + kv_bytes
        bytes_step += b
        flops_step += attn_flops + lin_flops
        time_step += b / bandwidth + lin_flops / lin_peak + attn_flops / peak_flops
    prefill = und_p * 2 / bandwidth
    return {
        "gen_params": gen_p,
        "und_params": und_p,
        "bytes_step": bytes_step,
        "flops_step": flops_step,
        "step_s": time_step,
        "plan_s": steps * time_step + prefill,
    }


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


class _StageHooks:
    """Synchronising timers around the stock pipeline's transformer and VAE calls (one instrumented call)."""

    def __init__(self, pipe: Any) -> None:
        self.times: dict[str, list[float]] = {"transformer": [], "vae_encode": [], "vae_decode": []}
        self._handles: list[Any] = []
        self._t0 = 0.0
        self._orig: dict[str, Any] = {}
        self.pipe = pipe

    def __enter__(self) -> _StageHooks:
        tr = self.pipe.transformer

        def pre(_m: Any, _a: Any, _k: Any = None) -> None:
            _sync()
            self._t0 = time.perf_counter()

        def post(_m: Any, _a: Any, _o: Any, _k: Any = None) -> None:
            _sync()
            self.times["transformer"].append(time.perf_counter() - self._t0)

        self._handles = [tr.register_forward_pre_hook(pre), tr.register_forward_hook(post)]
        vae = self.pipe.vae
        for name, key in (("encode", "vae_encode"), ("decode", "vae_decode")):
            orig = getattr(vae, name)
            self._orig[name] = orig

            def wrapped(*a: Any, _orig: Any = orig, _key: str = key, **k: Any) -> Any:
                _sync()
                t = time.perf_counter()
                out = _orig(*a, **k)
                _sync()
                self.times[_key].append(time.perf_counter() - t)
                return out

            setattr(vae, name, wrapped)
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        for name, orig in self._orig.items():
            setattr(self.pipe.vae, name, orig)


def stock_call(pipe: Any, req: Any, output_type: str = "latent") -> Any:
    import torch
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import CosmosActionCondition
    from PIL import Image

    cond = CosmosActionCondition(
        mode="policy",
        chunk_size=req.chunk_size,
        domain_name=req.domain_name,
        resolution_tier=req.resolution_tier,
        image=Image.fromarray(req.image),  # a uint8 array would be mis-scaled by diffusers 0.42.1
        view_point=req.view_point,
    )
    return pipe(
        req.prompt,
        action=cond,
        num_inference_steps=req.num_inference_steps,
        guidance_scale=req.guidance_scale,
        fps=req.fps,
        generator=torch.Generator("cpu").manual_seed(req.seed),
        output_type=output_type,
        enable_safety_check=False,
    )


def _timed(fn: Any, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        out.append(time.perf_counter() - t)
    return out


def _peak(fn: Any) -> float:
    import torch

    if not torch.cuda.is_available():
        return float("nan")
    _sync()
    torch.cuda.reset_peak_memory_stats()
    fn()
    _sync()
    return torch.cuda.max_memory_allocated() / 2**30


@dataclass(frozen=True)
class BenchConfig:
    """One benchmarked sampling configuration (crossed with every resolution tier)."""

    name: str
    chunk: int
    steps: int
    guidance: float
    fps: float

    def __post_init__(self) -> None:
        if self.chunk <= 0 or self.chunk % 4 or self.steps < 1 or self.guidance < 1.0 or self.fps <= 0:
            raise ValueError(f"bad benchmark configuration {self}")

    def describe(self) -> str:
        return f"chunk {self.chunk}, {self.steps} steps, guidance {self.guidance:g}, fps {self.fps:g}"


# ``default``: the package's defaults. ``deploy``: what NVIDIA's Cosmos 3 action-policy server runs
# (cosmos-framework: chunk 32 at 15 fps, 4 steps, guidance 3), i.e. what a robot runs.
CONFIGS = {
    "default": BenchConfig("default", chunk=16, steps=30, guidance=1.0, fps=15.0),
    "deploy": BenchConfig("deploy", chunk=32, steps=4, guidance=3.0, fps=15.0),
}
TIERS = {256: (256, 256), 480: (480, 640)}


def _request(cfg: BenchConfig, tier: int, hw: tuple[int, int], prompt: str) -> Any:
    from cosmos_ros.runtime.backend import PolicyRequest

    img = np.random.default_rng(0).integers(0, 256, (hw[0], hw[1], 3), dtype=np.uint8)
    return PolicyRequest(
        image=img,
        prompt=prompt,
        domain_name="bridge_orig_lerobot",
        chunk_size=cfg.chunk,
        resolution_tier=tier,
        num_inference_steps=cfg.steps,
        guidance_scale=cfg.guidance,
        fps=cfg.fps,
        seed=0,
    )


def run_row(
    pipe: Any, cfg: BenchConfig, tier: int, args: argparse.Namespace, log: Any, video: bool
) -> dict[str, Any]:
    """Stock and every fast variant on one (configuration, tier): same weights, inputs and seed."""
    import torch

    from cosmos_ros.runtime.fast import FastPolicyBackend, relative_l2
    from cosmos_ros.runtime.fp8 import apply_fp8, fp8_unsupported_reason

    hw = TIERS[tier]
    req = _request(cfg, tier, hw, args.prompt)
    reps = args.repeats
    fast = FastPolicyBackend(pipe, use_cuda_graph=True, use_compile=True, cache_text=True)
    nocache = FastPolicyBackend(pipe, use_cuda_graph=True, use_compile=True, cache_text=False)
    eager = FastPolicyBackend(pipe, use_cuda_graph=False, use_compile=False, cache_text=False)
    fp8 = None
    fp8_reason = fp8_unsupported_reason(next(pipe.transformer.parameters()).device) if args.fp8 else "off"
    if fp8_reason is None:
        fp8 = FastPolicyBackend(pipe, use_cuda_graph=True, use_compile=True, cache_text=True)
        apply_fp8(fp8)
    res: dict[str, Any] = {"tier": tier, "hw": hw, "cfg": cfg, "fp8_reason": fp8_reason}

    # Stock: warm-up and one instrumented call for stages (--smoke: the instrumented call is the only one).
    if not args.smoke:
        stock_call(pipe, req)
    with _StageHooks(pipe) as hooks:
        _sync()
        t = time.perf_counter()
        stock_out = stock_call(pipe, req)
        _sync()
        res["stock_instrumented_s"] = time.perf_counter() - t
    res["stock_stages"] = hooks.times
    stock_actions = stock_out.action[0].float().numpy()

    if args.smoke:
        res["stock_pre"] = [res["stock_instrumented_s"]]
    else:
        res["stock_pre"] = _timed(lambda: stock_call(pipe, req), reps)

    # Fast: the first plan compiles the layer function and captures the CUDA graph; report it apart.
    _sync()
    t = time.perf_counter()
    first = fast.run(req)
    _sync()
    res["fast_first_s"] = time.perf_counter() - t
    if fp8 is not None:
        t = time.perf_counter()
        fp8.run(req)
        _sync()
        res["fp8_first_s"] = time.perf_counter() - t

    # Timed plans, stock and fast interleaved so that drift of the machine (clocks, neighbours on the host's
    # CPUs) weighs on both alike.
    runs: list[Any] = []
    runs8: list[Any] = []
    res["stock"], res["fast"], res["fp8"] = [], [], []
    for _ in range(reps):
        if not args.smoke:
            res["stock"] += _timed(lambda: stock_call(pipe, req), 1)
        res["fast"] += _timed(lambda: runs.append(fast.run(req)), 1)
        if fp8 is not None:
            res["fp8"] += _timed(lambda: runs8.append(fp8.run(req)), 1)
    res["stock"] = res["stock"] or list(res["stock_pre"])
    res["stock_peak_gib"] = _peak(lambda: stock_call(pipe, req)) if not args.smoke else float("nan")
    res["fast_stages"] = {k: statistics.median(r.timings[k] for r in runs) for k in runs[0].timings}
    res["fast_peak_gib"] = _peak(lambda: fast.run(req))
    res["graph_errors"] = list(fast.graph_errors)
    if fp8 is not None:
        res["fp8_stages"] = {k: statistics.median(r.timings[k] for r in runs8) for k in runs8[0].timings}
        res["fp8_peak_gib"] = _peak(lambda: fp8.run(req))
        res["graph_errors"] += list(fp8.graph_errors)
        res["rel_l2_fp8"] = relative_l2(runs8[-1].actions, stock_actions)
        res["rel_l2_fp8_vs_fast"] = relative_l2(runs8[-1].actions, runs[-1].actions)
    if not args.smoke:
        nocache.run(req)
    res["nocache"] = _timed(lambda: nocache.run(req), 1 if args.smoke else max(3, reps // 2))
    res["graph_errors"] += list(nocache.graph_errors)
    if not args.smoke:
        eager.run(req)
    res["eager"] = _timed(lambda: eager.run(req), 1 if args.smoke else max(2, reps // 3))
    res["rel_l2_actions"] = relative_l2(runs[-1].actions, stock_actions)
    res["rel_l2_actions_first_vs_last"] = relative_l2(first.actions, runs[-1].actions)
    res["rel_l2_eager"] = relative_l2(eager.run(req).actions, stock_actions)
    res["action_norm"] = float(np.linalg.norm(stock_actions))
    # Seed spread: how far two seeds land apart (the scale on which any of the agreements above are small).
    other = PolicyRequestLike(req, seed=1)
    res["rel_l2_seed"] = relative_l2(fast.run(other).actions, runs[-1].actions)
    if args.fp32_reference:
        # The same (bf16-valued) weights computed in fp32: what "within bf16 tolerance" is measured against.
        if args.fp32_pipe is None:  # built on first use, after the first row's memory peaks were read
            args.fp32_pipe = fp32_pipeline(pipe)
        ref = stock_call(args.fp32_pipe, req).action[0].float().numpy()
        fast32 = FastPolicyBackend(args.fp32_pipe, use_cuda_graph=True, use_compile=False, cache_text=False)
        res["fp32_stock"] = relative_l2(stock_actions, ref)
        res["fp32_fast"] = relative_l2(runs[-1].actions, ref)
        res["fp32_fast32"] = relative_l2(fast32.run(req).actions, ref)
        if fp8 is not None:
            res["fp32_fp8"] = relative_l2(runs8[-1].actions, ref)
        del fast32

    # Video agreement (first decoded frame), once per tier: stock decodes, fast decodes on request.
    if video:
        vreq = PolicyRequestLike(req, decode_video=True)
        sv = stock_call(pipe, req, output_type="np")
        stock_u8 = np.clip(np.round(np.asarray(sv.video) * 255.0), 0, 255).astype(np.uint8)
        fv = fast.run(vreq)
        assert fv.video is not None
        res["rel_l2_frame0"] = relative_l2(fv.video[0].astype(np.float64), stock_u8[0].astype(np.float64))
        res["rel_l2_video"] = relative_l2(fv.video.astype(np.float64), stock_u8.astype(np.float64))
        res["fast_decode_s"] = fv.timings.get("decode_video", float("nan"))

    fast.prepare(req, torch.Generator("cpu").manual_seed(0))  # sets last_sequence_lengths of the cond pass
    plan = fast.prepare(req, torch.Generator("cpu").manual_seed(0))
    res["evals"] = [(lay.num_vision_tokens + lay.action_len, lay.und_len) for lay in plan.layouts]
    res["n_und"], res["n_gen"] = res["evals"][0][1], res["evals"][0][0]
    log(
        f"  {cfg.name} tier {tier} done: stock median {statistics.median(res['stock']):.3f}s, "
        f"fast {statistics.median(res['fast']):.3f}s"
        + (f", fp8 {statistics.median(res['fp8']):.3f}s" if res["fp8"] else "")
    )
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return res


def PolicyRequestLike(req: Any, **changes: Any) -> Any:  # noqa: N802 - reads like the constructor it wraps
    """A copy of ``req`` with ``changes`` applied."""
    from cosmos_ros.runtime.backend import PolicyRequest

    return PolicyRequest(**{**req.__dict__, **changes})


def _fmt_stats(xs: list[float]) -> str:
    med = statistics.median(xs) * 1e3
    return f"{med:8.1f} ms (min {min(xs) * 1e3:.1f}, max {max(xs) * 1e3:.1f}, n={len(xs)})"


def _peaks() -> tuple[float, float, float]:
    """(dense bf16 FLOP/s, dense FP8 FLOP/s, HBM bytes/s) of this GPU from ``_DEVICE_PEAKS``, or NaNs."""
    import torch

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    for k, v in _DEVICE_PEAKS.items():
        if k in name:
            return v
    nan = float("nan")
    return nan, nan, nan


def report(results: list[dict[str, Any]], pipe: Any, args: argparse.Namespace, header: str) -> str:
    buf = io.StringIO()
    p = lambda s="": print(s, file=buf)  # noqa: E731
    p(header)
    peak_flops, peak_fp8, bw_spec = _peaks()
    bw_meas = args.measured_bw
    summary: list[str] = []
    for r in results:
        tier, hw, cfg = r["tier"], r["hw"], r["cfg"]
        # The stock call is host-bound (Python per step), so it drifts with the host CPU; take the faster of
        # its two medians (before the fast path first ran, and interleaved with it) for the speed-up.
        stock_med = min(statistics.median(r["stock"]), statistics.median(r["stock_pre"]))
        fast_med = statistics.median(r["fast"])
        p()
        p(f"== {cfg.name}: tier {tier}: {hw[0]}x{hw[1]} input, {cfg.describe()}, actions only")
        ev = ", ".join(f"{g} generation + {u} text tokens" for g, u in r["evals"])
        p(f"   evaluations per step: {ev}")
        p(f"   stock diffusers, before fast ever ran: {_fmt_stats(r['stock_pre'])}")
        p(f"   stock diffusers, interleaved w/ fast : {_fmt_stats(r['stock'])}")
        p(f"   fast bf16 (CUDA graph)                : {_fmt_stats(r['fast'])}")
        if r["fp8"]:
            p(f"   fast fp8 (CUDA graph)                 : {_fmt_stats(r['fp8'])}")
        else:
            p(f"   fast fp8: not run ({r['fp8_reason']})")
        if r["graph_errors"]:
            p(f"   (CUDA graph capture FAILED, a path ran eagerly: {r['graph_errors'][0]})")
        p(f"   fast, first plan (compile + capture)  : {r['fast_first_s'] * 1e3:8.1f} ms")
        p(f"   fast, new goal every plan (no K/V hit): {_fmt_stats(r['nocache'])}")
        p(f"   fast eager (no graph, no compile)     : {_fmt_stats(r['eager'])}")
        p(f"   speed-up fast bf16 vs stock (faster median): {stock_med / fast_med:8.2f}x")
        if r["fp8"]:
            p(
                f"   speed-up fast fp8 vs stock / vs fast bf16 : "
                f"{stock_med / statistics.median(r['fp8']):8.2f}x"
                f" / {fast_med / statistics.median(r['fp8']):.2f}x"
            )
        st = r["stock_stages"]
        tr_t = st["transformer"]
        p(
            f"   stock stages (1 instrumented call, {r['stock_instrumented_s'] * 1e3:.0f} ms): transformer "
            f"{statistics.median(tr_t) * 1e3:.1f} ms/evaluation x {len(tr_t)} = {sum(tr_t) * 1e3:.0f} ms; "
            f"VAE encode {sum(st['vae_encode']) * 1e3:.1f} ms; rest "
            f"{(r['stock_instrumented_s'] - sum(tr_t) - sum(st['vae_encode'])) * 1e3:.0f} ms"
        )
        fs = r["fast_stages"]
        p("   fast bf16 stages (median): " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in fs.items()))
        p(f"   fast bf16 denoise per step            : {fs['denoise'] / cfg.steps * 1e3:8.2f} ms")
        if r["fp8"]:
            f8 = r["fp8_stages"]
            p(f"   fast fp8 denoise per step             : {f8['denoise'] / cfg.steps * 1e3:8.2f} ms")
        mem = (
            f"   peak GPU memory: stock {r['stock_peak_gib']:.2f} GiB, fast bf16 {r['fast_peak_gib']:.2f} GiB"
        )
        if r["fp8"]:
            mem += f", fast fp8 {r['fp8_peak_gib']:.2f} GiB (bf16 weights still resident for stock)"
        p(mem + " (weights included" + (", fp32 copy included" if args.fp32_pipe is not None else "") + ")")
        p(
            f"   agreement (relative L2 vs stock, same seed): actions fast {r['rel_l2_actions']:.3e}, "
            f"eager {r['rel_l2_eager']:.3e} (|stock actions| = {r['action_norm']:.3g}); "
            f"fast first vs later plan {r['rel_l2_actions_first_vs_last']:.1e}; seed 0 vs seed 1 "
            f"{r['rel_l2_seed']:.3g}"
        )
        if r["fp8"]:
            p(
                f"   fp8 actions vs stock bf16 {r['rel_l2_fp8']:.3e}, "
                f"vs fast bf16 {r['rel_l2_fp8_vs_fast']:.3e}"
            )
        if "fp32_stock" in r:
            line = (
                f"   actions vs an fp32 reference (same weights, stock call in fp32): stock bf16 "
                f"{r['fp32_stock']:.3e}, fast bf16 {r['fp32_fast']:.3e}, fast fp32 {r['fp32_fast32']:.3e}"
            )
            if "fp32_fp8" in r:
                line += f", fast fp8 {r['fp32_fp8']:.3e}"
            p(line)
        if "rel_l2_frame0" in r:
            p(
                f"   agreement with video decoded: first frame {r['rel_l2_frame0']:.3e}, whole video "
                f"{r['rel_l2_video']:.3e}; fast VAE decode {r['fast_decode_s'] * 1e3:.1f} ms"
            )
        floors: dict[str, float] = {}
        for label, bw in (("spec", bw_spec), ("measured copy", bw_meas)):
            if not (bw == bw and peak_flops == peak_flops):
                continue
            f = floor_seconds(pipe.transformer, r["evals"], cfg.steps, peak_flops, bw)
            floors[label] = f["plan_s"]
            p(
                f"   floor bf16 ({label} {bw / 1e12:.2f} TB/s, {peak_flops / 1e12:.0f} TFLOP/s): "
                f"{f['bytes_step'] / 1e9:.2f} GB + {f['flops_step'] / 1e12:.2f} TFLOP per step -> "
                f"{f['step_s'] * 1e3:.2f} ms/step, {f['plan_s'] * 1e3:.0f} ms/plan; fast bf16 is "
                f"{fast_med / f['plan_s']:.2f}x the floor"
            )
            if r["fp8"]:
                f8f = floor_seconds(
                    pipe.transformer,
                    r["evals"],
                    cfg.steps,
                    peak_flops,
                    bw,
                    linear_bytes=1.0,
                    linear_peak=peak_fp8,
                )
                floors[label + " fp8"] = f8f["plan_s"]
                p(
                    f"   floor fp8  ({label}, linears at {peak_fp8 / 1e12:.0f} TFLOP/s and 1 byte/weight): "
                    f"{f8f['bytes_step'] / 1e9:.2f} GB per step -> {f8f['step_s'] * 1e3:.2f} ms/step, "
                    f"{f8f['plan_s'] * 1e3:.0f} ms/plan; fast fp8 is "
                    f"{statistics.median(r['fp8']) / f8f['plan_s']:.2f}x the floor"
                )
        fl = floors.get("measured copy", float("nan"))
        row = (
            f"| {cfg.name} tier {tier} | {stock_med * 1e3:.0f} ms | {fast_med * 1e3:.0f} ms | "
            f"{stock_med / fast_med:.1f}x | {fl * 1e3:.0f} ms ({fast_med / fl:.2f}x) |"
        )
        if r["fp8"]:
            m8 = statistics.median(r["fp8"])
            fl8 = floors.get("measured copy fp8", float("nan"))
            row += f" {m8 * 1e3:.0f} ms ({stock_med / m8:.1f}x) | {fl8 * 1e3:.0f} ms ({m8 / fl8:.2f}x) |"
        else:
            row += " - | - |"
        row += f" {r['stock_peak_gib']:.1f} / {r['fast_peak_gib']:.1f} GiB |"
        summary.append(row)
    p()
    p("summary (medians; floor at the measured copy bandwidth; peak memory stock / fast bf16):")
    p(
        "| row | stock | fast bf16 | speed-up | floor bf16 (fast/floor) | fast fp8 (speed-up) | floor fp8 "
        "| memory |"
    )
    p("|---|---|---|---|---|---|---|---|")
    for row in summary:
        p(row)
    return buf.getvalue()


def understanding_modules(tr: Any) -> list[Any]:
    """Modules only the text (understanding) pathway reads: needed once per goal, never by a step."""
    mods: list[Any] = [tr.embed_tokens, tr.lm_head, tr.norm]
    for layer in tr.layers:
        a = layer.self_attn
        mods += [a.to_q, a.to_k, a.to_v, a.to_out, layer.mlp, layer.input_layernorm]
        mods.append(layer.post_attention_layernorm)
    return mods


def _move(mods: list[Any], device: str) -> float:
    """Move ``mods`` to ``device``; seconds taken (synchronised)."""
    _sync()
    t = time.perf_counter()
    for m in mods:
        m.to(device)
    _sync()
    return time.perf_counter() - t


def memory_phase(pipe: Any, args: argparse.Namespace, log: Any) -> str:
    """Peak GPU memory of the fast path alone, per configuration and precision, with and without the
    understanding expert on the GPU. Destroys the stock pipeline's bf16 generation weights (run last)."""
    import torch

    from cosmos_ros.runtime.fast import FastPolicyBackend
    from cosmos_ros.runtime.fp8 import apply_fp8, fp8_unsupported_reason

    if not torch.cuda.is_available():
        return "memory phase: no CUDA device, skipped"
    rows = [(CONFIGS[c], t) for c in args.configs for t in args.tier_list]
    und = understanding_modules(pipe.transformer)
    und_bytes = sum(p.numel() * p.element_size() for m in und for p in m.parameters())
    out = [
        "",
        "== memory: fast path alone (stock and fp32 copies freed), peak allocated per plan, weights included",
        f"   understanding-expert weights (text pathway, read once per goal): {und_bytes / 2**30:.2f} GiB",
    ]
    precisions = ["bf16"] + (["fp8"] if args.fp8 and fp8_unsupported_reason("cuda") is None else [])
    for prec in precisions:
        be = FastPolicyBackend(pipe, use_cuda_graph=True, use_compile=True, cache_text=True)
        if prec == "fp8":
            apply_fp8(be, free_bf16_weights=True)
        torch.cuda.empty_cache()
        resident = torch.cuda.memory_allocated() / 2**30
        out.append(f"   {prec}: resident before the first plan {resident:.2f} GiB")
        for cfg, tier in rows:
            req = _request(cfg, tier, TIERS[tier], args.prompt)
            be.run(req)
            peak = _peak(lambda req=req, be=be: be.run(req))
            t_off = _move(und, "cpu")
            torch.cuda.empty_cache()
            peak_off = _peak(lambda req=req, be=be: be.run(req))  # same goal: the text K/V cache serves it
            t_on = _move(und, "cuda")
            out.append(
                f"   {prec} {cfg.name} tier {tier}: peak {peak:.2f} GiB; understanding expert offloaded "
                f"to the host between goals: {peak_off:.2f} GiB (offload {t_off * 1e3:.0f} ms, bring back "
                f"for a new goal {t_on * 1e3:.0f} ms, pageable host memory)"
            )
            log(out[-1])
        del be
        torch.cuda.empty_cache()
    return "\n".join(out)


def measure_bandwidth() -> float:
    """Device-to-device copy bandwidth (bytes read + written per second), median of 5 copies of 2 GiB."""
    import torch

    if not torch.cuda.is_available():
        return float("nan")
    a = torch.empty(2**30, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    for _ in range(2):
        b.copy_(a)
    ts = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        b.copy_(a)
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e) / 1e3)
    del a, b
    torch.cuda.empty_cache()
    return 2 * 2**31 / statistics.median(ts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("nano", "small"), default="nano")
    parser.add_argument("--tiers", default="256,480", help="comma list of 256 (256x256 input), 480 (480x640)")
    parser.add_argument(
        "--configs",
        default="default,deploy",
        help=f"comma list of {sorted(CONFIGS)} (default: chunk 16/30 steps/guidance 1; deploy: chunk 32/4 "
        "steps/guidance 3/15 fps, the Cosmos 3 action-policy server's settings)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="one call per path, no warm-ups (a test that the script runs, e.g. with --size small on CPU)",
    )
    parser.add_argument("--no-fp8", dest="fp8", action="store_false", help="skip the FP8 rows")
    parser.add_argument(
        "--memory", action="store_true", help="finish with the fast-path-only memory phase (frees stock)"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed plans per path (median reported)")
    parser.add_argument("--no-video", dest="video", action="store_false", help="skip the decoded-frame check")
    parser.add_argument(
        "--fp32-reference",
        action="store_true",
        help="also run the stock call in fp32 on the same weights (needs ~95 GB more GPU memory: H200)",
    )
    parser.add_argument(
        "--prompt", default="pick up the red cube and place it in the blue bowl", help="goal text"
    )
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    args.fp32_pipe = None
    try:
        args.configs = [c for c in args.configs.split(",") if c]
        args.tier_list = [int(x) for x in args.tiers.split(",") if x]
        bad = [c for c in args.configs if c not in CONFIGS] + [
            str(t) for t in args.tier_list if t not in TIERS
        ]
        if bad or not args.configs or not args.tier_list:
            raise ValueError(f"unknown or missing configurations/tiers {bad}")
    except ValueError as exc:
        parser.error(str(exc))

    import torch

    if args.smoke:
        args.repeats = 1
    # Every (tier, configuration, cond/uncond text length, precision) is one more specialisation of the one
    # compiled layer function; dynamo's default limit (8) would silently send the later rows to eager.
    dynamo_config = torch._dynamo.config
    if hasattr(dynamo_config, "recompile_limit"):
        dynamo_config.recompile_limit = 64
    else:  # older torch
        dynamo_config.cache_size_limit = 64
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    size = NANO if args.size == "nano" else SMALL
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    args.measured_bw = measure_bandwidth()
    t = time.perf_counter()
    pipe = build_pipeline(size, device, dtype, args.prompt)
    _sync()
    n_params = sum(p.numel() for p in pipe.transformer.parameters())
    log(f"built {size.name}: {n_params / 1e9:.2f} B transformer params in {time.perf_counter() - t:.1f}s")
    import diffusers

    dev_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    now = datetime.datetime.now(datetime.timezone.utc)
    header = (
        f"cosmos_ros fast-inference benchmark, {now:%Y-%m-%d %H:%M UTC}\n"
        f"device: {dev_name}; torch {torch.__version__}; diffusers {diffusers.__version__}; dtype {dtype}\n"
        f"model: {size.name}: hidden {size.hidden}, {size.layers} layers, {size.heads} query / "
        f"{size.kv_heads} KV "
        f"heads, head_dim {size.head_dim}, FFN {size.ffn}, action_dim {size.action_dim}, vocab {size.vocab}: "
        f"{n_params / 1e9:.2f} B transformer parameters; Wan 2.2-size VAE (z_dim {size.z_dim}).\n"
        f"random weights: latency and agreement only, no planning quality. measured D2D copy bandwidth "
        f"{args.measured_bw / 1e12:.2f} TB/s"
    )
    results = []
    for name in args.configs:
        for tier in args.tier_list:
            results.append(
                run_row(pipe, CONFIGS[name], tier, args, log, video=args.video and name == "default")
            )
    text = report(results, pipe, args, header)
    if args.memory:
        import gc

        args.fp32_pipe = None
        gc.collect()
        text += memory_phase(pipe, args, log) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
