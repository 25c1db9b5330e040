"""Fast policy backend: the stock Cosmos 3 policy call, minus its waste, on the pipeline's own modules.

Why a separate path: the stock ``Cosmos3OmniPipeline.__call__`` (diffusers 0.42.1) spends most of a plan on
work whose result it throws away or recomputes. This backend runs its own sampling loop that calls the loaded
pipeline's components (the transformer's layers, norms and projections, the VAE, the tokenizer, the scheduler)
and produces the same actions for the same inputs, seed and weights. What it removes, each verified against
the diffusers source and by ``test/test_fast_backend.py``:

1. **Text tokens are computed once per plan, not once per step.** In ``Cosmos3AttnProcessor`` the
   understanding (text) stream attends only to itself (causal SDPA over ``q_und, k_und, v_und``); the
   generation stream (vision + action tokens) attends to ``[k_und_for_gen, k_gen]``. Text never reads a
   generation token, so its per-layer keys/values are identical at every denoising step: we prefill them once
   (``_prefill_text``) and each step runs only the generation pathway (half the weights, ~1/2 the tokens).
2. **GQA without the math kernel.** ``enable_gqa=True`` makes SDPA refuse its flash/efficient kernels; we
   expand the 8 KV heads to 32 once (text part per plan, generation part per step) so fused kernels run.
3. **The VAE encodes only the conditioning frame.** Policy mode keeps latent frame 0 and replaces the others
   by noise, yet the stock call encodes all ``chunk + 1`` repeat-padded frames. The Wan VAE is causal (its
   ``_encode`` encodes frame 0 alone before the 4-frame chunks), so encoding one frame gives the same latent.
4. **No video decode unless asked** (``decode_video``); actions never need it.
5. **Static work hoisted out of the loop**: rotary tables, index tensors, the per-domain action projection
   weights and every step's timestep embedding are computed once per plan; on CUDA the whole generation step
   is captured once as a CUDA graph (cached per sequence layout) and replayed each step.

Randomness is drawn exactly as the stock call draws it (vision noise, then action noise, from the caller's
``torch.Generator`` on CPU), so a fixed seed gives the stock call's actions within floating-point tolerance.
"""

from __future__ import annotations

import copy
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from cosmos_ros.runtime.backend import PolicyRequest, RawPolicyOutput

# Each cached CUDA graph pins its own memory pool and static buffers; a robot keeps one goal and one tier for
# many plans, so a handful of layouts covers it.
MAX_CACHED_GRAPHS = 4


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x``: ``[N, H, D]``; ``cos``/``sin``: ``[N, D]`` (broadcast over heads)."""
    return x * cos.unsqueeze(1) + _rotate_half(x) * sin.unsqueeze(1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float, nemotron: bool) -> torch.Tensor:
    """The two RMSNorm flavours of ``transformer_cosmos3`` (``RMSNorm`` / ``Cosmos3NemotronRMSNorm``)."""
    var = x.float().pow(2).mean(-1, keepdim=True)
    if nemotron:
        return (w.float() * (x.float() * torch.rsqrt(var + eps))).to(x.dtype)
    y = x * torch.rsqrt(var + eps)
    return y.to(w.dtype) * w if w.dtype in (torch.float16, torch.bfloat16) else y * w


def _gen_layer(
    x: torch.Tensor,
    k_und: torch.Tensor,
    v_und: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    weights: tuple[torch.Tensor | None, ...],
    heads: int,
    kv_heads: int,
    head_dim: int,
    eps: float,
    nemotron: bool,
    mask: torch.Tensor | None = None,
    linear: Any = functional.linear,
) -> torch.Tensor:
    """One decoder layer for the generation tokens only, reading the text keys/values cached for this plan.

    Same arithmetic as ``Cosmos3VLTextMoTDecoderLayer`` on its generation pathway, written over the layer's
    own weight tensors so that ``torch.compile`` can fuse its elementwise work (one compiled function serves
    all layers: the weights are arguments, not attributes). ``linear`` computes every weight product; the
    FP8 path (``cosmos_ros.runtime.fp8``) passes one that takes quantised weights.
    """
    ln1, wq, bq, wk, bk, wv, bv, nq, nk, wo, bo, ln2, wg, wu, wd = weights
    assert ln1 is not None and wq is not None and wk is not None and wv is not None and wo is not None
    assert nq is not None and nk is not None and ln2 is not None and wu is not None and wd is not None
    n = x.shape[0]
    groups = heads // kv_heads
    y = _rms(x, ln1, eps, nemotron)
    q = _rms(linear(y, wq, bq).view(n, heads, head_dim), nq, eps, nemotron)
    k = _rms(linear(y, wk, bk).view(n, kv_heads, head_dim), nk, eps, nemotron)
    v = linear(y, wv, bv).view(n, kv_heads, head_dim)
    q = _apply_rope(q, cos, sin).transpose(0, 1)
    k = _apply_rope(k, cos, sin).transpose(0, 1)[:, None].expand(kv_heads, groups, n, head_dim)
    v = v.transpose(0, 1)[:, None].expand(kv_heads, groups, n, head_dim)
    k_all = torch.cat([k_und, k.reshape(heads, n, head_dim)], dim=1)
    v_all = torch.cat([v_und, v.reshape(heads, n, head_dim)], dim=1)
    # mask: optional additive key mask [1, 1, 1, text + gen], for text padded to a bucket (exported engines).
    o = functional.scaled_dot_product_attention(
        q.unsqueeze(0), k_all.unsqueeze(0), v_all.unsqueeze(0), attn_mask=mask
    )
    x = x + linear(o[0].transpose(0, 1).reshape(n, heads * head_dim), wo, bo)
    y = _rms(x, ln2, eps, nemotron)
    if wg is None:  # noqa: SIM108 - relu2 MLP (Nemotron backbone); else SwiGLU
        h = torch.relu(linear(y, wu)).square()
    else:
        h = functional.silu(linear(y, wg)) * linear(y, wu)
    return x + linear(h, wd)


def linear_sampler_coefficients(
    scheduler: Any, num_steps: int, sigmas: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Express a configured diffusers multistep scheduler as ``x_{i+1} = a_i x_0 + sum_j b_ij v_j``.

    Why: UniPC (and every multistep solver here, with thresholding off) is linear in the initial sample and
    the velocities, with coefficients that depend only on the sigma schedule; but stepping it costs ~100 tiny
    kernel launches and host syncs per step. We run the real scheduler once on probe vectors (element 0 = the
    initial sample, element j + 1 = velocity j, in float64) and read the coefficients off, so the loop
    does one weighted sum per step with exactly the scheduler's arithmetic.

    Returns:
        ``(a [steps], b [steps, steps] lower-triangular, timesteps)``.

    Raises:
        ValueError: The scheduler is not linear in its inputs (thresholding on).
    """
    if getattr(scheduler.config, "thresholding", False):
        raise ValueError("thresholding schedulers are not linear; the fast path cannot precompute them")
    sched = copy.deepcopy(scheduler)
    if sigmas is None:
        sched.set_timesteps(num_steps, device="cpu")
    else:
        sched.set_timesteps(num_steps, device="cpu", sigmas=sigmas)
    timesteps = sched.timesteps
    n = len(timesteps)
    x = torch.zeros(1, n + 1, dtype=torch.float64)
    x[0, 0] = 1.0
    a = np.zeros(n)
    b = np.zeros((n, n))
    for i, t in enumerate(timesteps):
        v = torch.zeros(1, n + 1, dtype=torch.float64)
        v[0, i + 1] = 1.0
        x = sched.step(v.unsqueeze(0), t, x.unsqueeze(0), return_dict=False)[0].squeeze(0)
        a[i] = float(x[0, 0])
        b[i, :n] = x[0, 1:].numpy()
    return a, b, timesteps


@dataclass
class _PlanLayout:
    """Everything about one plan that is fixed across its denoising steps."""

    und_len: int
    latent_shape: tuple[int, ...]  # [1, C, T, h, w]
    patch_h: int
    patch_w: int
    num_vision_tokens: int
    num_noisy_vision_tokens: int
    action_len: int
    raw_action_dim: int
    cos_gen: torch.Tensor  # [G, D]
    sin_gen: torch.Tensor
    w_in: torch.Tensor  # [action_dim, hidden]
    b_in: torch.Tensor  # [hidden]
    w_out: torch.Tensor  # [hidden, action_dim]
    b_out: torch.Tensor  # [action_dim]
    state_numel: int = 0  # vision latents + action latents, flattened
    k_und: list[torch.Tensor] = field(default_factory=list)  # per layer [H, und_len, D], KV heads expanded
    v_und: list[torch.Tensor] = field(default_factory=list)

    def key(self) -> tuple[Any, ...]:
        return (self.und_len, self.latent_shape, self.action_len, self.raw_action_dim)


@dataclass
class PreparedPlan:
    """Everything the denoising loop needs, computed once per plan (``FastPolicyBackend.prepare``)."""

    layouts: list[_PlanLayout]  # [cond] or [cond, uncond] with classifier-free guidance
    x0_state: torch.Tensor  # float32 [numel]: vision latents then action latents, flattened
    latent_shape: tuple[int, ...]
    raw_dim: int
    coef_a: torch.Tensor
    coef_b: torch.Tensor
    tembs: torch.Tensor  # [steps, hidden]


class _StepBuffers:
    """Static tensors a generation step reads; one set per layout so a CUDA graph can replay over them."""

    def __init__(self, layout: _PlanLayout):
        self.k = [torch.empty_like(k) for k in layout.k_und]
        self.v = [torch.empty_like(v) for v in layout.v_und]
        self.cos_gen = torch.empty_like(layout.cos_gen)
        self.sin_gen = torch.empty_like(layout.sin_gen)
        self.w_in = torch.empty_like(layout.w_in)
        self.b_in = torch.empty_like(layout.b_in)
        self.w_out = torch.empty_like(layout.w_out)
        self.b_out = torch.empty_like(layout.b_out)
        self.und_len = layout.und_len

    def load(self, layout: _PlanLayout) -> None:
        """Copy this plan's static data in place (addresses stay fixed for graph replay)."""
        for kb, vb, k, v in zip(self.k, self.v, layout.k_und, layout.v_und, strict=True):
            kb.copy_(k)
            vb.copy_(v)
        for dst, src in (
            (self.cos_gen, layout.cos_gen),
            (self.sin_gen, layout.sin_gen),
            (self.w_in, layout.w_in),
            (self.b_in, layout.b_in),
            (self.w_out, layout.w_out),
            (self.b_out, layout.b_out),
        ):
            dst.copy_(src)


class _GraphedStep:
    """A captured generation step: static state and timestep embedding in, static velocity out."""

    def __init__(self, backend: FastPolicyBackend, layout: _PlanLayout, bufs: _StepBuffers):
        dev = layout.cos_gen.device
        self.state = torch.zeros(layout.state_numel, device=dev, dtype=torch.float32)
        self.temb = torch.zeros(1, backend.hidden, device=dev, dtype=backend.dtype)
        self.bufs = bufs
        stream = torch.cuda.Stream(device=dev)
        stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up compiles, allocates workspaces and picks kernels outside the capture
                backend._gen_step(self.state, self.temb, layout, bufs)
        torch.cuda.current_stream(dev).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = backend._gen_step(self.state, self.temb, layout, bufs)

    def __call__(self, state: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        self.state.copy_(state)
        self.temb.copy_(temb)
        self.graph.replay()
        return self.out


class FastPolicyBackend:
    """Policy backend running a lean sampling loop over a loaded ``Cosmos3OmniPipeline``'s modules.

    Args:
        pipe: A loaded ``Cosmos3OmniPipeline`` whose transformer has ``action_gen=True``.
        device: Expected device of the pipeline's transformer (default: where it is). The backend never moves
            modules: the loader owns placement.
        dtype: Expected transformer dtype (default: its dtype).
        use_cuda_graph: Capture the generation step as a CUDA graph on CUDA devices (ignored on CPU).
        use_compile: ``torch.compile`` the per-layer function on CUDA to fuse its elementwise work (ignored on
            CPU; falls back to eager, recorded in ``graph_errors``, if compilation fails).
        cache_text: Keep the text keys/values of the last prompts (a robot keeps one goal for many plans; the
            keys/values depend only on the token ids).

    Raises:
        ValueError: The pipeline cannot serve policy requests, or is not on ``device``/``dtype``.
    """

    name = "fast"

    def __init__(
        self,
        pipe: Any,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        use_cuda_graph: bool = True,
        use_compile: bool = True,
        cache_text: bool = True,
    ) -> None:
        tr = getattr(pipe, "transformer", None)
        if tr is None or not getattr(tr.config, "action_gen", False):
            raise ValueError("fast backend needs a Cosmos 3 pipeline whose transformer has action_gen=True")
        param = next(tr.layers.parameters())
        if device is not None and torch.device(device) != param.device:
            # torch.device("cuda") != torch.device("cuda:0"); compare types and indices leniently.
            want = torch.device(device)
            if want.type != param.device.type or (
                want.index is not None and want.index != param.device.index
            ):
                raise ValueError(f"device: the pipeline's transformer is on {param.device}, expected {want}")
        if dtype is not None and dtype != param.dtype:
            raise ValueError(f"dtype: the pipeline's transformer is {param.dtype}, expected {dtype}")
        self.pipe = pipe
        self.tr = tr
        self.device = param.device
        self.dtype = param.dtype
        cfg = tr.config
        self.hidden = int(cfg.hidden_size)
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(cfg.num_key_value_heads)
        self.head_dim = int(cfg.head_dim)
        self.groups = self.heads // self.kv_heads
        self.action_dim = int(cfg.action_dim)
        self.patch = int(cfg.latent_patch_size)
        self.latent_channel = int(cfg.latent_channel)
        self.use_cuda_graph = use_cuda_graph and self.device.type == "cuda"
        self._graphs: OrderedDict[tuple[Any, ...], _GraphedStep] = OrderedDict()
        self.cache_text = cache_text
        self._text_cache: OrderedDict[tuple[int, ...], tuple[list[torch.Tensor], list[torch.Tensor]]] = (
            OrderedDict()
        )
        self._coef_cache: dict[tuple[int, bool], tuple[torch.Tensor, torch.Tensor, Any]] = {}
        self.nemotron = cfg.hidden_act == "relu2"
        self.eps = float(tr.layers[0].input_layernorm_moe_gen.eps)
        self._layer_weights = [self._weights_of(layer) for layer in tr.layers]
        self._layer_fn: Any = _gen_layer
        if use_compile and self.device.type == "cuda":
            self._layer_fn = torch.compile(_gen_layer, dynamic=False, fullgraph=True)
        # (text tokens, generation tokens) of the last plan, for diagnostics and the benchmark's floor.
        self.last_sequence_lengths: tuple[int, int] = (0, 0)
        # Why a CUDA graph capture fell back to eager execution (empty when graphs run, or on CPU).
        self.graph_errors: list[str] = []

    # ------------------------------------------------------------------ public API

    @torch.no_grad()
    def run(self, request: PolicyRequest) -> RawPolicyOutput:
        """Run one policy call (see ``PolicyBackend.run``)."""
        generator = torch.Generator("cpu").manual_seed(request.seed)
        actions, video, timings = self.sample(request, generator)
        return RawPolicyOutput(actions=actions, video=video, timings=timings)

    @torch.no_grad()
    def prepare(
        self, request: PolicyRequest, generator: torch.Generator, timings: dict[str, float] | None = None
    ) -> PreparedPlan:
        """Steps 1-5 of a plan: check inputs, encode the frame, draw noise, encode the text, set the sampler.

        ``generator`` is consumed like the stock call consumes it (vision noise, then action noise).
        """
        from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import CosmosActionCondition
        from diffusers.utils.torch_utils import randn_tensor

        pipe, dev = self.pipe, self.device
        timings = {} if timings is None else timings

        # 1. Check inputs: the stock dataclass validates domain and tier and resolves the raw action width.
        cond = CosmosActionCondition(
            mode="policy",
            chunk_size=request.chunk_size,
            domain_name=request.domain_name,
            resolution_tier=request.resolution_tier,
            image=request.image,
            view_point=request.view_point,
        )
        raw_dim = int(cond.raw_action_dim)
        if raw_dim > self.action_dim:
            raise ValueError(
                f"domain_name {request.domain_name!r} needs {raw_dim} dims, model has {self.action_dim}"
            )

        # 2. Conditioning frame -> latent frame 0 (one frame through the causal VAE; see module docstring).
        t0 = time.perf_counter()
        frame, image_size, height, width = pipe._prepare_action_video_conditioning(
            [self.image_tensor(request.image)], request.resolution_tier, 1, device=dev, dtype=self.dtype
        )
        _sync(dev)
        timings["preprocess_image"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        x0 = pipe._encode_video(frame).contiguous().float()
        x0 = pipe._remove_action_video_padding_from_latent(x0, image_size)
        _sync(dev)
        timings["encode_image"] = time.perf_counter() - t0

        # 3. Noise, drawn in the stock order and shapes: vision [1, C, T, h, w] then action [chunk, A].
        t_lat = 1 + request.chunk_size // int(pipe.vae_scale_factor_temporal)
        latent_shape = (1, x0.shape[1], t_lat, x0.shape[3], x0.shape[4])
        latents = randn_tensor(latent_shape, generator=generator, device=dev, dtype=torch.float32)
        latents[:, :, :1] = x0[:, :, :1]
        action_latents = randn_tensor(
            (request.chunk_size, self.action_dim), generator=generator, device=dev, dtype=torch.float32
        )
        action_latents[:, raw_dim:] = 0

        # 4. Text: tokenize like the stock call, then run the text pathway once and keep its keys/values.
        t0 = time.perf_counter()
        cond_ids, uncond_ids = pipe.tokenize_prompt(
            request.prompt,
            None,
            num_frames=request.chunk_size + 1,
            height=height,
            width=width,
            fps=request.fps,
            action_mode="policy",
            action_view_point=request.view_point,
        )
        domain_id = int(pipe_domain_id(request.domain_name))
        layouts = [self._layout(cond_ids, latents, request, raw_dim, domain_id)]
        if request.guidance_scale != 1.0:
            layouts.append(self._layout(uncond_ids, latents, request, raw_dim, domain_id))
        _sync(dev)
        timings["encode_text"] = time.perf_counter() - t0
        lay = layouts[0]
        self.last_sequence_lengths = (lay.und_len, lay.num_vision_tokens + lay.action_len)

        # 5. Sampler: the pipeline's scheduler as per-step linear coefficients (linear_sampler_coefficients).
        coef_a, coef_b, timesteps = self._coefficients(request.num_inference_steps)
        return PreparedPlan(
            layouts=layouts,
            x0_state=torch.cat([latents.reshape(-1), action_latents.reshape(-1)]),
            latent_shape=latent_shape,
            raw_dim=raw_dim,
            coef_a=coef_a,
            coef_b=coef_b,
            tembs=self._timestep_embeddings(timesteps),
        )

    @torch.no_grad()
    def sample(
        self, request: PolicyRequest, generator: torch.Generator
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
        """The whole policy call (see ``prepare`` for the generator's use).

        Returns:
            ``(actions [chunk, raw_width] float32, video [F, H, W, 3] uint8 or None, timings)``.
        """
        timings: dict[str, float] = {}
        t_start = time.perf_counter()
        # Upload the prefix before the encoder's GPU work is queued: a copy from pageable host memory waits
        # for the stream, so after prepare() it would stall the loop's first launches until the encoder ends.
        uploaded = self._upload_prefix(request)
        plan = self.prepare(request, generator, timings)
        dev = self.device

        # 6. Denoise: one transformer evaluation (two with guidance) and one weighted sum per step.
        t0 = time.perf_counter()
        steppers = [self._stepper(layout, slot) for slot, layout in enumerate(plan.layouts)]
        _sync(dev)
        timings["prepare_step"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        g = float(request.guidance_scale)
        x0_state, coef_a, coef_b = plan.x0_state, plan.coef_a, plan.coef_b
        steps = plan.tembs.shape[0]
        velocities = torch.zeros(steps, x0_state.numel(), device=dev, dtype=torch.float32)
        state = x0_state
        n_vis = math.prod(plan.latent_shape)
        pin = self._prefix_velocity(request, plan, n_vis, uploaded)
        for i in range(steps):
            v = steppers[0](state, plan.tembs[i : i + 1])
            if len(steppers) > 1:
                v_cond = v.clone()
                v_uncond = steppers[1](state, plan.tembs[i : i + 1])
                v = v_uncond + g * (v_cond - v_uncond)
            velocities[i].copy_(v)
            if pin is not None:  # prefix conditioning: pull the action rows toward the pinned velocity
                v_act = velocities[i, n_vis:].view(request.chunk_size, self.action_dim)
                v_act.add_(pin[1] * (pin[0] - v_act))
            state = (coef_a[i] * x0_state + coef_b[i : i + 1, : i + 1] @ velocities[: i + 1]).reshape(-1)
        latents = state[:n_vis].reshape(plan.latent_shape)
        actions = state[n_vis:].reshape(request.chunk_size, self.action_dim)[:, : plan.raw_dim].cpu().numpy()
        timings["denoise"] = time.perf_counter() - t0

        # 7. Optional video decode (the stock post-processing, on request only).
        video: np.ndarray | None = None
        if request.decode_video:
            t0 = time.perf_counter()
            video = self.decode_latents(latents)
            timings["decode_video"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        return actions.astype(np.float32), video, timings

    def _upload_prefix(self, request: PolicyRequest) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The prefix's actions ``[chunk, raw]`` and weights ``[chunk, 1]`` on the device, or ``None``."""
        prefix = request.prefix
        if prefix is None:
            return None
        dev = self.device
        actions = torch.from_numpy(np.ascontiguousarray(prefix.actions, dtype=np.float32)).to(dev)
        weights = torch.from_numpy(np.ascontiguousarray(prefix.weights, dtype=np.float32)).to(dev)
        return actions, weights.view(-1, 1)

    def _prefix_velocity(
        self,
        request: PolicyRequest,
        plan: PreparedPlan,
        n_vis: int,
        uploaded: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The velocity that keeps an action row on the prefix, and the rows' weights (``None``: no prefix).

        Why a velocity and not an overwritten state (Isaac-GR00T's RTC pull request overwrites the state):
        this loop rebuilds every state from the initial noise and the velocity history (the multistep
        solver's linear form), so a state overwrite would be forgotten at the next step. A constant velocity
        ``v* = (noise - target) / c``, with ``c`` minus the sum of the last step's velocity coefficients
        (``sigma_0`` for a consistent solver), moves a row along the straight flow-matching path from its
        initial noise to the target: at every step the row *is* the target re-noised to that step's sigma,
        and it ends on the target exactly. A row with weight ``w`` gets ``v + w (v* - v)``: 1 pins it, 0
        leaves the model free, in between the soft mask. Only the action tokens are touched; the predicted
        frames are denoised as the model wants, attending to the pinned actions.
        """
        prefix = request.prefix
        if prefix is None:
            return None
        if prefix.actions.shape[1] != plan.raw_dim:
            raise ValueError(
                f"prefix has {prefix.actions.shape[1]} action columns, domain {request.domain_name!r} has "
                f"{plan.raw_dim}"
            )
        assert uploaded is not None, "a prefix without its upload (_upload_prefix)"
        actions, weights = uploaded
        target = torch.zeros(request.chunk_size, self.action_dim, device=self.device, dtype=torch.float32)
        target[:, : plan.raw_dim] = actions
        noise = plan.x0_state[n_vis:].view(request.chunk_size, self.action_dim)
        c = -plan.coef_b[-1].sum()  # stays on the device: float() here would wait for the encoder's work
        return (noise - target) / c, weights

    def image_tensor(self, image: np.ndarray) -> Any:
        """The conditioning frame in the form the pipeline scales right, on the fast route where it can.

        Why not give the pipeline the uint8 array: diffusers 0.42.1's ``VideoProcessor`` takes a uint8 numpy
        frame as if it were already in ``[0, 1]`` (values up to 509 reach the VAE); PIL images are scaled
        right. For a frame whose sides are multiples of the VAE's 16 pixels, a float tensor in ``[0, 1]`` on
        the device gives the PIL route's values exactly (no resize happens; ``test_fast_backend`` checks it)
        and runs on the GPU; other sizes take the PIL route (PIL resamples them to a multiple of 16).

        Returns:
            ``[1, 3, H, W]`` float32 tensor in ``[0, 1]`` on the backend's device, or a ``PIL.Image``.
        """
        sf = int(self.pipe.vae_scale_factor_spatial)
        if image.shape[0] % sf or image.shape[1] % sf:
            from PIL import Image

            return Image.fromarray(np.ascontiguousarray(image))
        t = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        return t.permute(2, 0, 1).unsqueeze(0).float() / 255.0

    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Normalised latents ``[1, C, T, h, w]`` -> ``[F, H, W, 3]`` uint8, as the stock pipeline decodes."""
        pipe = self.pipe
        vdt = pipe.vae.dtype
        mean = pipe._vae_latents_mean.to(device=latents.device, dtype=vdt).view(1, -1, 1, 1, 1)
        inv_std = pipe._vae_latents_inv_std.to(device=latents.device, dtype=vdt).view(1, -1, 1, 1, 1)
        decoded = pipe.vae.decode(latents.to(vdt) / inv_std + mean).sample.to(latents.dtype)
        frames = pipe.video_processor.postprocess_video(decoded, output_type="np")[0]
        return np.clip(np.round(np.asarray(frames) * 255.0), 0, 255).astype(np.uint8)

    # ------------------------------------------------------------------ per-plan preparation

    def _layout(
        self,
        input_ids: list[int],
        latents: torch.Tensor,
        request: PolicyRequest,
        raw_dim: int,
        domain_id: int,
    ) -> _PlanLayout:
        pipe, tr, dev = self.pipe, self.tr, self.device
        text = pipe._prepare_text_segment(input_ids, device=dev)
        vision = pipe._prepare_vision_segment(
            input_vision_tokens=latents,
            has_image_condition=True,
            mrope_offset=text["vision_start_temporal_offset"],
            vision_fps=request.fps,
            curr=text["und_len"],
            device=dev,
            condition_frame_indexes=[0],
        )
        action_tokens = torch.zeros(request.chunk_size, self.action_dim, device=dev)
        action = pipe._prepare_action_segment(
            input_action_tokens=action_tokens,
            condition_frame_indexes=[],
            mrope_offset=text["vision_start_temporal_offset"],
            action_fps=request.fps,
            curr=text["und_len"] + vision["num_vision_tokens"],
            device=dev,
        )
        position_ids = torch.cat(
            [text["text_mrope_ids"], vision["vision_mrope_ids"], action["action_mrope_ids"]], 1
        )
        cos, sin = tr.rotary_emb(position_ids=position_ids.unsqueeze(1), device=dev, dtype=self.dtype)
        cos, sin = cos.squeeze(0), sin.squeeze(0)
        und_len = int(text["und_len"])
        _, patch_h, patch_w = vision["vision_token_shapes"][0]
        fc_in, fc_out = tr.action_proj_in, tr.action_proj_out
        layout = _PlanLayout(
            und_len=und_len,
            latent_shape=tuple(latents.shape),
            patch_h=int(patch_h),
            patch_w=int(patch_w),
            num_vision_tokens=int(vision["num_vision_tokens"]),
            num_noisy_vision_tokens=int(vision["num_noisy_vision_tokens"]),
            action_len=int(action["action_len"]),
            raw_action_dim=raw_dim,
            cos_gen=cos[und_len:].contiguous(),
            sin_gen=sin[und_len:].contiguous(),
            w_in=fc_in.fc.weight[domain_id].view(fc_in.input_size, fc_in.output_size).detach(),
            b_in=fc_in.bias.weight[domain_id].detach(),
            w_out=fc_out.fc.weight[domain_id].view(fc_out.input_size, fc_out.output_size).detach(),
            b_out=fc_out.bias.weight[domain_id].detach(),
            state_numel=latents.numel() + int(action["action_len"]) * self.action_dim,
        )
        key = tuple(int(i) for i in input_ids)
        cached = self._text_cache.get(key) if self.cache_text else None
        if cached is None:
            self._prefill_text(text["input_ids"], cos[:und_len], sin[:und_len], layout)
            if self.cache_text:
                self._text_cache[key] = (layout.k_und, layout.v_und)
                while len(self._text_cache) > 2:
                    self._text_cache.popitem(last=False)
        else:
            self._text_cache.move_to_end(key)
            layout.k_und, layout.v_und = cached
        return layout

    def _expand_kv(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, KV, D]`` -> ``[H, N, D]`` with GQA's mapping (query head h reads KV head h // groups)."""
        kv, n, d = x.shape[1], x.shape[0], x.shape[2]
        # expand + reshape instead of repeat_interleave: same mapping, no host sync inside a CUDA graph.
        return x.transpose(0, 1)[:, None].expand(kv, self.groups, n, d).reshape(kv * self.groups, n, d)

    def _prefill_text(
        self, input_ids: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layout: _PlanLayout
    ) -> None:
        """Run the text pathway once; keep each layer's keys/values as the generation tokens read them."""
        tr = self.tr
        h = tr.embed_tokens(input_ids)
        n = h.shape[0]
        last = len(tr.layers) - 1
        for li, layer in enumerate(tr.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            k = attn.norm_k(attn.to_k(x).view(n, self.kv_heads, self.head_dim))
            v = attn.to_v(x).view(n, self.kv_heads, self.head_dim)
            k_gen = attn.k_norm_und_for_gen(k) if attn.k_norm_und_for_gen is not None else k
            layout.k_und.append(self._expand_kv(_apply_rope(k_gen, cos, sin)))
            layout.v_und.append(self._expand_kv(v))
            if li == last:
                break  # the last layer's text output feeds nothing the generation tokens read
            q = attn.norm_q(attn.to_q(x).view(n, self.heads, self.head_dim))
            q = _apply_rope(q, cos, sin).transpose(0, 1)
            k = self._expand_kv(_apply_rope(k, cos, sin))
            o = functional.scaled_dot_product_attention(q, k, layout.v_und[-1], is_causal=True)
            h = h + attn.to_out(o.transpose(0, 1).reshape(n, -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))

    def _timestep_embeddings(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Every step's timestep embedding, ``[steps, hidden]`` in the model dtype, in one batch."""
        tr = self.tr
        ts = (
            torch.tensor([float(t) for t in timesteps.tolist()], device=self.device)
            * tr.config.timestep_scale
        )
        edt = next(tr.time_embedder.parameters()).dtype
        return tr.time_embedder(tr.time_proj(ts).to(edt)).to(self.dtype)

    def _coefficients(self, num_steps: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Sampler coefficients for ``num_steps``, configured like the stock call configures its scheduler."""
        native = bool(self.pipe.config.use_native_flow_schedule)
        key = (num_steps, native)
        if key not in self._coef_cache:
            sched = self.pipe.scheduler
            sigmas = None
            if native:
                sigmas = np.linspace(1.0 - 1.0 / sched.config.num_train_timesteps, 0.0, num_steps + 1)[:-1]
            a, b, timesteps = linear_sampler_coefficients(sched, num_steps, sigmas)
            self._coef_cache[key] = (
                torch.tensor(a, dtype=torch.float32, device=self.device),
                torch.tensor(b, dtype=torch.float32, device=self.device),
                timesteps,
            )
        return self._coef_cache[key]

    def _weights_of(self, layer: Any) -> tuple[torch.Tensor | None, ...]:
        """The generation-pathway tensors of one decoder layer, in ``_gen_layer``'s order (no copies)."""
        attn, mlp = layer.self_attn, layer.mlp_moe_gen
        return (
            layer.input_layernorm_moe_gen.weight,
            attn.add_q_proj.weight,
            attn.add_q_proj.bias,
            attn.add_k_proj.weight,
            attn.add_k_proj.bias,
            attn.add_v_proj.weight,
            attn.add_v_proj.bias,
            attn.norm_added_q.weight,
            attn.norm_added_k.weight,
            attn.to_add_out.weight,
            attn.to_add_out.bias,
            layer.post_attention_layernorm_moe_gen.weight,
            mlp.gate_proj.weight if mlp.hidden_act == "silu" else None,
            mlp.up_proj.weight,
            mlp.down_proj.weight,
        )

    def _stepper(self, layout: _PlanLayout, slot: int = 0) -> Any:
        """A callable ``(state fp32 [numel], temb [1, hidden]) -> velocity fp32 [numel]`` for this layout.

        ``slot`` is the layout's place in the plan (0 conditional, 1 unconditional): part of the graph key,
        because a goal and the empty negative prompt can tokenize to the same length, and the two steppers of
        one plan must never share one graph's static buffers (the second load would overwrite the first's text
        keys/values and guidance would silently compare the unconditional pass with itself).
        """
        key = (slot, *layout.key())
        if self.use_cuda_graph:
            graphed = self._graphs.get(key)
            if graphed is None:
                bufs = _StepBuffers(layout)
                bufs.load(layout)
                try:
                    graphed = _GraphedStep(self, layout, bufs)
                except Exception as exc:  # capture or compile refused: run eagerly, and say so
                    self.graph_errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    self.use_cuda_graph = False
                    self._layer_fn = _gen_layer
                    return lambda state, temb: self._gen_step(state, temb, layout, bufs)
                self._graphs[key] = graphed
                while len(self._graphs) > MAX_CACHED_GRAPHS:
                    self._graphs.popitem(last=False)
            else:
                self._graphs.move_to_end(key)
                graphed.bufs.load(layout)
            return graphed
        bufs = _StepBuffers(layout)
        bufs.load(layout)
        return lambda state, temb: self._gen_step(state, temb, layout, bufs)

    # ------------------------------------------------------------------ the step

    def _gen_step(
        self,
        state: torch.Tensor,
        temb: torch.Tensor,
        layout: _PlanLayout,
        bufs: Any,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One transformer evaluation of the generation tokens against the cached text keys/values.

        Args:
            state: float32 ``[numel]``: vision latents ``[1, C, T, h, w]`` (frame 0 is the clean condition)
                then action latents ``[chunk, action_dim]``, flattened.
            temb: ``[1, hidden]`` timestep embedding of this step.
            layout: The plan's sequence layout.
            bufs: ``_StepBuffers`` (or any object with the same tensors: the ONNX wrapper passes its inputs).
            mask: Optional additive key mask ``[1, 1, 1, text + gen]`` when the text is padded to a bucket.

        Returns:
            float32 velocity laid out like ``state``, zero where conditioned and beyond the raw action width.
        """
        tr, p, c = self.tr, self.patch, self.latent_channel
        _, _, nt, h, w = layout.latent_shape
        ph, pw = layout.patch_h, layout.patch_w
        n_vis = c * nt * h * w
        lat = state[:n_vis].to(self.dtype).reshape(c, nt, h, w)
        act = state[n_vis:].to(self.dtype).reshape(layout.action_len, self.action_dim)
        if ph * p != h or pw * p != w:
            lat = functional.pad(lat, (0, pw * p - w, 0, ph * p - h))
        tok = lat.reshape(c, nt, ph, p, pw, p).permute(1, 2, 4, 3, 5, 0).reshape(nt * ph * pw, p * p * c)
        tok = tr.proj_in(tok)
        per_frame = ph * pw
        tok = torch.cat([tok[:per_frame], tok[per_frame:] + temb], dim=0)  # frame 0 is clean: no timestep
        a = (act @ bufs.w_in + bufs.b_in) + tr.action_modality_embed
        a = a + temb
        x = torch.cat([tok, a], dim=0)
        for li, weights in enumerate(self._layer_weights):
            x = self._layer_fn(
                x,
                bufs.k[li],
                bufs.v[li],
                bufs.cos_gen,
                bufs.sin_gen,
                weights,
                self.heads,
                self.kv_heads,
                self.head_dim,
                self.eps,
                self.nemotron,
                mask,
            )
        x = tr.norm_moe_gen(x)
        nv = layout.num_vision_tokens
        pv = tr.proj_out(x[per_frame:nv])  # noisy frames only, like the stock mse indexes
        pv = pv.reshape(nt - 1, ph, pw, p, p, c).permute(5, 0, 1, 3, 2, 4).reshape(c, nt - 1, ph * p, pw * p)
        pv = pv[:, :, :h, :w]
        v_vis = torch.cat([torch.zeros_like(pv[:, :1]), pv], dim=1)
        pa = x[nv:] @ bufs.w_out + bufs.b_out
        raw = layout.raw_action_dim
        pa = torch.cat([pa[:, :raw], torch.zeros_like(pa[:, raw:])], dim=1)
        return torch.cat([v_vis.reshape(-1).float(), pa.reshape(-1).float()])


def pipe_domain_id(domain_name: str) -> int:
    """Cosmos 3 embodiment domain id of ``domain_name`` (the table the stock pipeline uses)."""
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import _EMBODIMENT_TO_DOMAIN_ID

    if domain_name not in _EMBODIMENT_TO_DOMAIN_ID:
        raise ValueError(
            f"domain_name must be one of {sorted(_EMBODIMENT_TO_DOMAIN_ID)}, got {domain_name!r}"
        )
    return int(_EMBODIMENT_TO_DOMAIN_ID[domain_name])


def relative_l2(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """``||a - b|| / ||b||`` in float64: the agreement metric between a fast path and the reference ``b``."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {y.shape}")
    denom = float(np.linalg.norm(y))
    return float(np.linalg.norm(x - y)) / (denom if denom > 0 else 1.0)


def make_fast_backend(pipe: Any, precision: str = "bf16", **kwargs: Any) -> FastPolicyBackend:
    """Factory for a backend registry: ``make_fast_backend(loaded_pipe, precision="bf16" | "fp8")``.

    ``fp8`` (opt-in) runs the generation expert's linears in FP8 (``cosmos_ros.runtime.fp8``) and refuses
    devices without FP8 tensor cores.
    """
    from cosmos_ros.runtime.fp8 import make_precision_backend  # fp8 imports this module

    return make_precision_backend(pipe, precision, **kwargs)


__all__ = ["MAX_CACHED_GRAPHS", "FastPolicyBackend", "make_fast_backend", "pipe_domain_id", "relative_l2"]
