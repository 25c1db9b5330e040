"""The flow-matching objective that ``Cosmos3OmniPipeline``'s policy sampler inverts, on its own packing.

What the sampler does (diffusers 0.42.1, ``pipeline_cosmos3_omni.py``, policy mode): the conditioning frame is
repeated to ``chunk + 1`` frames and VAE-encoded; latent frame 0 stays clean, the later latent frames and the
``[chunk, action_dim]`` action tokens start as noise, and ``UniPCMultistepScheduler`` (``flow_prediction``,
flow sigmas warped by ``flow_shift``) integrates the transformer's velocity from sigma ~1 to 0. Training
therefore uses, for one sigma per sample shared by both modalities (the sampler shares it too):

    x_t = (1 - sigma) * x0 + sigma * eps,   timestep = 1000 * sigma,   target v = eps - x0,

on the noisy latent frames and on all action tokens; the scheduler recovers ``x0 = x_t - sigma * v``. Sigma is
drawn as ``u ~ U(0, 1)`` pushed through the same warp the scheduler applies to its sigmas
(``shift * u / (1 + (shift - 1) * u)``), so training sees noise levels in the proportion sampling visits them.

The token sequence (text ids, mRoPE positions, index sets) is built by the pipeline's own ``tokenize_prompt``
and ``_prepare_*_segment`` methods, assembled exactly as ``__call__`` step 5 assembles its conditional pass;
``test_train_tiny_policy`` compares the two. The transformer packs one sample per call (no batch axis), so a
batch is a loop of per-sample backward passes with the gradients accumulated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PolicyShape:
    """What a policy call looks like; fixed at training, repeated by the planner at inference.

    Attributes:
        domain_name: Cosmos 3 embodiment domain (selects the domain-aware action heads).
        chunk_size: Actions per plan (a multiple of 4).
        resolution_tier: Conditioning canvas tier.
        view_point: Camera label written into the action caption.
        fps: Frame rate told to the model (1 / step period).
    """

    domain_name: str = "robomind-franka"
    chunk_size: int = 16
    resolution_tier: int = 256
    view_point: str = "ego_view"
    fps: float = 15.0

    def __post_init__(self) -> None:
        if self.chunk_size < 4 or self.chunk_size % 4:
            raise ValueError(f"chunk_size must be a positive multiple of 4, got {self.chunk_size}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")


def warp_sigma(u: np.ndarray | float, shift: float) -> Any:
    """The UniPC flow-sigma warp ``shift * u / (1 + (shift - 1) * u)`` (identity for ``shift == 1``)."""
    return shift * u / (1.0 + (shift - 1.0) * u)


class PackedPrompt:
    """The static part of one conditional transformer call (text, positions, index sets) for one prompt.

    Built once per distinct prompt; only the noisy tokens and timesteps change per training sample.
    """

    def __init__(
        self,
        pipe: Any,
        input_ids: list[int],
        vision_shape: tuple[int, ...],
        shape: PolicyShape,
        device: Any = "cpu",
    ):
        import torch

        device = torch.device(device)
        text = pipe._prepare_text_segment(input_ids, device=device)
        latent_t = vision_shape[2]
        vision = pipe._prepare_vision_segment(
            input_vision_tokens=torch.empty(vision_shape),
            has_image_condition=True,
            mrope_offset=text["vision_start_temporal_offset"],
            vision_fps=shape.fps,
            curr=text["und_len"],
            device=device,
            condition_frame_indexes=[0],
        )
        action = pipe._prepare_action_segment(
            input_action_tokens=torch.empty(shape.chunk_size, 1),
            condition_frame_indexes=[],
            mrope_offset=text["vision_start_temporal_offset"],
            action_fps=shape.fps,
            curr=text["und_len"] + vision["num_vision_tokens"],
            device=device,
        )
        self.static: dict[str, Any] = {
            **text,
            **vision,
            **action,
            "position_ids": torch.cat(
                [text["text_mrope_ids"], vision["vision_mrope_ids"], action["action_mrope_ids"]], dim=1
            ),
            "sequence_length": text["und_len"] + vision["num_vision_tokens"] + action["action_len"],
        }
        self.num_noisy_vision_tokens = int(vision["num_noisy_vision_tokens"])
        self.num_noisy_action_tokens = int(action["num_noisy_action_tokens"])
        self.latent_t = latent_t

    def forward(
        self,
        transformer: Any,
        vision_tokens: Any,
        action_tokens: Any,
        timestep: float,
        domain_id: Any,
    ) -> tuple[Any, Any]:
        """One transformer call; returns the velocity predictions ``(vision [1,C,T,h,w], action [T, D])``."""
        import torch

        s = self.static
        preds_vision, _, preds_action = transformer(
            input_ids=s["input_ids"],
            text_indexes=s["text_indexes"],
            position_ids=s["position_ids"],
            und_len=s["und_len"],
            sequence_length=s["sequence_length"],
            vision_tokens=[vision_tokens],
            vision_token_shapes=s["vision_token_shapes"],
            vision_sequence_indexes=s["vision_sequence_indexes"],
            vision_mse_loss_indexes=s["vision_mse_loss_indexes"],
            vision_timesteps=torch.full(
                (self.num_noisy_vision_tokens,), timestep, device=vision_tokens.device
            ),
            vision_noisy_frame_indexes=s["vision_noisy_frame_indexes"],
            action_tokens=[action_tokens],
            action_token_shapes=s["action_token_shapes"],
            action_sequence_indexes=s["action_sequence_indexes"],
            action_mse_loss_indexes=s["action_mse_loss_indexes"],
            action_timesteps=torch.full(
                (self.num_noisy_action_tokens,), timestep, device=action_tokens.device
            ),
            action_noisy_frame_indexes=s["action_noisy_frame_indexes"],
            action_domain_ids=[domain_id],
            return_dict=False,
        )
        return preds_vision[0], preds_action[0]


class PromptCache:
    """``PackedPrompt`` per goal text, plus the empty (unconditional) prompt the sampler's CFG pass uses."""

    def __init__(
        self,
        pipe: Any,
        vision_shape: tuple[int, ...],
        shape: PolicyShape,
        height: int,
        width: int,
        device: Any = "cpu",
    ):
        self._pipe = pipe
        self._device = device
        self._vision_shape = vision_shape
        self._shape = shape
        self._hw = (height, width)
        self._cache: dict[str, PackedPrompt] = {}
        self.unconditional = self._build("", unconditional=True)

    def _build(self, goal: str, unconditional: bool = False) -> PackedPrompt:
        cond_ids, uncond_ids = self._pipe.tokenize_prompt(
            goal,
            None,  # negative prompt: the pipeline's default "" (what the planner's calls use)
            num_frames=self._shape.chunk_size + 1,
            height=self._hw[0],
            width=self._hw[1],
            fps=self._shape.fps,
            action_mode="policy",
            action_view_point=self._shape.view_point,
        )
        ids = uncond_ids if unconditional else cond_ids
        return PackedPrompt(self._pipe, ids, self._vision_shape, self._shape, self._device)

    def get(self, goal: str) -> PackedPrompt:
        if goal not in self._cache:
            self._cache[goal] = self._build(goal)
        return self._cache[goal]


def flow_loss(
    transformer: Any,
    packed: PackedPrompt,
    x0_vision: Any,
    x0_action: Any,
    sigma: Any,
    eps_vision: Any,
    eps_action: Any,
    domain_ids: Any,
    vision_weight: float,
) -> tuple[Any, Any]:
    """Flow-matching loss of ``B`` samples sharing one prompt; returns ``(total, action_mse)`` (scalars).

    Args:
        transformer: ``Cosmos3OmniTransformer``.
        packed: The prompt's static sequence.
        x0_vision: ``[B, C, T, h, w]`` normalised clean latents (frame 0 is the condition and stays clean).
        x0_action: ``[B, chunk, action_dim]`` normalised clean actions.
        sigma: ``[B]`` noise levels in (0, 1].
        eps_vision, eps_action: Gaussian noise shaped like ``x0_vision``, ``x0_action``.
        domain_ids: ``[B]`` long tensor of the embodiment domain.
        vision_weight: Weight of the future-frame loss relative to the action loss.
    """
    import torch

    sv = sigma.view(-1, 1, 1, 1, 1)
    xt_v = torch.cat(
        [x0_vision[:, :, :1], (1.0 - sv) * x0_vision[:, :, 1:] + sv * eps_vision[:, :, 1:]], dim=2
    )
    sa = sigma.view(-1, 1, 1)
    xt_a = (1.0 - sa) * x0_action + sa * eps_action
    pred_v, pred_a = batched_forward(transformer, packed, xt_v, xt_a, 1000.0 * sigma, domain_ids)
    loss_a = ((pred_a - (eps_action - x0_action)) ** 2).mean()
    loss_v = ((pred_v - (eps_vision[:, :, 1:] - x0_vision[:, :, 1:])) ** 2).mean()
    return loss_a + vision_weight * loss_v, loss_a


def batched_forward(
    transformer: Any,
    packed: PackedPrompt,
    xt_vision: Any,
    xt_action: Any,
    timesteps: Any,
    domain_ids: Any,
) -> tuple[Any, Any]:
    """``Cosmos3OmniTransformer.forward`` for ``B`` samples sharing one prompt, in one pass (training only).

    Why: the stock forward packs one sequence without a batch axis, so a batch costs ``B`` launches of every
    kernel; on a GPU that leaves the device idle. This computes the same function with a leading batch axis,
    using the transformer's own modules: the sequence is ``[text | vision | action]`` (the layout
    ``PackedPrompt`` builds), the causal text pathway depends on the prompt alone and so runs once, and the
    generation pathway attends to ``[text keys | own keys]`` per sample. ``test_train_tiny_policy`` checks it
    against the stock forward.

    Args:
        xt_vision: ``[B, C, T, h, w]`` noisy latents (frame 0 clean).
        xt_action: ``[B, chunk, D]`` noisy actions.
        timesteps: ``[B]`` timesteps (``1000 * sigma``).
        domain_ids: ``[B]`` long embodiment ids.

    Returns:
        ``(velocity of latent frames 1.. [B, C, T-1, h, w], action velocity [B, chunk, D])``.
    """
    import torch

    cfg = transformer.config
    s = packed.static
    p = cfg.latent_patch_size
    b, c, t, h, w = xt_vision.shape
    if h % p or w % p:
        raise ValueError(f"latent height/width must be multiples of the patch size {p}, got {h}x{w}")
    hp, wp = h // p, w // p

    und = transformer.embed_tokens(s["input_ids"]).unsqueeze(0)  # [1, Lu, H]
    vis = xt_vision.reshape(b, c, t, hp, p, wp, p)
    vis = torch.einsum("bcthpwq->bthwpqc", vis).reshape(b, t * hp * wp, p * p * c)
    vis = transformer.proj_in(vis)
    t_emb = transformer.time_embedder(transformer.time_proj(timesteps * cfg.timestep_scale))  # [B, H]
    stride = hp * wp
    vis = torch.cat([vis[:, :stride], vis[:, stride:] + t_emb[:, None]], dim=1)  # frame 0 is not noisy
    act = (
        transformer.action_proj_in(xt_action, domain_ids) + transformer.action_modality_embed + t_emb[:, None]
    )
    gen = torch.cat([vis, act], dim=1)

    cos, sin = transformer.rotary_emb(
        position_ids=s["position_ids"].unsqueeze(1), device=und.device, dtype=und.dtype
    )
    cos, sin = cos.squeeze(0), sin.squeeze(0)
    lu = s["und_len"]
    rot = (cos[:lu], sin[:lu], cos[lu:], sin[lu:])
    for layer in transformer.layers:
        und_attn, gen_attn = _batched_attention(
            layer.self_attn, layer.input_layernorm(und), layer.input_layernorm_moe_gen(gen), rot
        )
        und = und + und_attn
        gen = gen + gen_attn
        und = und + layer.mlp(layer.post_attention_layernorm(und))
        gen = gen + layer.mlp_moe_gen(layer.post_attention_layernorm_moe_gen(gen))
    gen = transformer.norm_moe_gen(gen)

    n_vis = t * stride
    pv = transformer.proj_out(gen[:, stride:n_vis]).reshape(b, t - 1, hp, wp, p, p, c)
    pv = torch.einsum("bthwpqc->bcthpwq", pv).reshape(b, c, t - 1, h, w)
    pa = transformer.action_proj_out(gen[:, n_vis:], domain_ids)
    return pv, pa


def _batched_attention(attn: Any, und: Any, gen: Any, rot: tuple[Any, Any, Any, Any]) -> tuple[Any, Any]:
    """``Cosmos3AttnProcessor`` with a batch axis on the generation stream (``und`` is ``[1, Lu, H]``)."""
    import torch
    from torch.nn import functional

    nh, nkv, hd = attn.num_attention_heads, attn.num_key_value_heads, attn.head_dim
    b = gen.shape[0]

    def heads(x: Any, n: int) -> Any:
        return x.view(x.shape[0], x.shape[1], n, hd)

    q_und = attn.norm_q(heads(attn.to_q(und), nh))
    k_und = attn.norm_k(heads(attn.to_k(und), nkv))
    v_und = heads(attn.to_v(und), nkv)
    k_und_gen = attn.k_norm_und_for_gen(k_und) if attn.k_norm_und_for_gen is not None else k_und
    q_gen = attn.norm_added_q(heads(attn.add_q_proj(gen), nh))
    k_gen = attn.norm_added_k(heads(attn.add_k_proj(gen), nkv))
    v_gen = heads(attn.add_v_proj(gen), nkv)

    cos_u, sin_u, cos_g, sin_g = (r.unsqueeze(1) for r in rot)  # [L, 1, hd]: broadcast over heads

    def rope(x: Any, cos: Any, sin: Any) -> Any:
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    q_und, k_und, k_und_gen = (
        rope(q_und, cos_u, sin_u),
        rope(k_und, cos_u, sin_u),
        rope(k_und_gen, cos_u, sin_u),
    )
    q_gen, k_gen = rope(q_gen, cos_g, sin_g), rope(k_gen, cos_g, sin_g)

    def sdpa(q: Any, k: Any, v: Any, causal: bool) -> Any:  # [B, L, heads, hd] in and out
        out = functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal, enable_gqa=True
        )
        return out.transpose(1, 2).flatten(-2, -1)

    und_out = attn.to_out(sdpa(q_und, k_und, v_und, causal=True))
    all_k = torch.cat([k_und_gen.expand(b, -1, -1, -1), k_gen], dim=1)
    all_v = torch.cat([v_und.expand(b, -1, -1, -1), v_gen], dim=1)
    gen_out = attn.to_add_out(sdpa(q_gen, all_k, all_v, causal=False))
    return und_out, gen_out
