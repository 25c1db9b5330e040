"""Train a tiny ``Cosmos3OmniPipeline`` policy from demonstrations and save it as a pipeline directory.

Steps (``train_policy``):
1. Build the pipeline: a fresh small ``Cosmos3OmniTransformer``, the tiny Wan VAE and byte-level tokenizer of
   ``make_tiny_model`` (seeded; the VAE stays frozen), the UniPC flow scheduler the sampler uses.
2. Encode every frame exactly as the policy call does (repeat to ``chunk + 1`` frames, the tier's canvas, VAE
   encoder mean) and set the VAE's ``latents_mean/std`` to the per-channel statistics of these latents. Why:
   a random VAE's latents are dominated by the background; standardising them per channel makes the small
   objects the task is about visible on the noise's scale (without it the policy learned nothing in the
   feasibility probe). The statistics are saved in ``vae/config.json``, so inference normalises alike.
3. Normalise actions with statistics of the data (``ActionStats``) and pad them to the domain's width.
4. Re-initialise the ``DomainAwareLinear`` action heads (their embeddings start N(0, 1), far too large).
5. Optimise the flow-matching loss (``cosmos_ros.training.flow``) with AdamW, warm-up and cosine decay;
   ``empty_prompt_prob`` of the samples see the unconditional prompt, so guidance > 1 has something to
   contrast.
6. ``save_pretrained`` + the action-space profile (``action_space.yaml``) + ``training.json`` (settings, data,
   losses) into the output directory.

Everything random comes from ``seed`` (torch and NumPy generators made here), and torch runs on the CPU with a
fixed thread count, so one seed gives the same weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_ros.models import PROFILE_FILE
from cosmos_ros.training.demos import PANDA_JOINT_NAMES, DemoSet
from cosmos_ros.training.flow import PolicyShape, PromptCache, flow_loss, warp_sigma
from cosmos_ros.training.normalization import ActionStats, profile_mapping

TRAINING_FILE = "training.json"


@dataclass(frozen=True)
class TrainConfig:
    """Model size and optimisation settings.

    Attributes:
        steps: Optimiser steps.
        batch_size: Samples per step (gradients accumulated one sample at a time).
        lr: Peak learning rate (AdamW), reached after ``warmup_steps``, then cosine-decayed to 10 %.
        warmup_steps: Linear warm-up steps.
        weight_decay: AdamW weight decay.
        grad_clip: Max gradient norm.
        hidden_size, num_layers, num_heads, num_kv_heads, head_dim, intermediate_size: Transformer size.
        empty_prompt_prob: Fraction of samples trained on the empty (unconditional) prompt.
        vision_weight: Weight of the future-frame loss relative to the action loss.
        flow_shift: Sigma warp; must equal the saved scheduler's ``flow_shift``.
        seed: Seed of weights, batches, noise and sigmas.
        threads: torch CPU threads.
    """

    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    hidden_size: int = 64
    num_layers: int = 6
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 16
    intermediate_size: int = 256
    empty_prompt_prob: float = 0.15
    vision_weight: float = 1.0
    flow_shift: float = 5.0
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "threads",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})"
            )
        if self.head_dim % 8:
            raise ValueError(f"head_dim must be a multiple of 8 (mRoPE sections), got {self.head_dim}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.empty_prompt_prob < 1.0:
            raise ValueError(f"empty_prompt_prob must be in [0, 1), got {self.empty_prompt_prob}")
        if not self.flow_shift > 0:
            raise ValueError(f"flow_shift must be > 0, got {self.flow_shift}")


@dataclass
class TrainResult:
    """What training produced: the pipeline, the statistics, and the loss curve (per step means)."""

    pipe: Any
    stats: ActionStats
    losses: list[float] = field(default_factory=list)
    action_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def build_pipeline(cfg: TrainConfig, action_dim: int) -> Any:
    """A fresh pipeline: small transformer (seeded), the tiny VAE and tokenizer, the flow UniPC scheduler."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        Cosmos3OmniPipeline,
        Cosmos3OmniTransformer,
        UniPCMultistepScheduler,
    )

    # The project's offline tokenizer and tiny VAE, as make_tiny_model builds them.
    from cosmos_ros.tools.make_tiny_model import _LATENT_CHANNELS, TINY_VAE_KWARGS, _build_tokenizer

    tokenizer = _build_tokenizer()
    torch.manual_seed(cfg.seed)
    rope_quarter = cfg.head_dim // 8  # mRoPE sections (t, h, w) = (2, 1, 1) quarters of head_dim / 2
    transformer = Cosmos3OmniTransformer(
        head_dim=cfg.head_dim,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        num_hidden_layers=cfg.num_layers,
        latent_channel=_LATENT_CHANNELS,
        latent_patch_size=2,
        patch_latent_dim=_LATENT_CHANNELS * 2 * 2,
        rope_axes_dim=[2 * rope_quarter, rope_quarter, rope_quarter],
        rope_theta=10000.0,
        vocab_size=len(tokenizer),
        action_gen=True,
        action_dim=action_dim,
        num_embodiment_domains=32,
        dtype="float32",
    )
    torch.manual_seed(cfg.seed)
    vae = AutoencoderKLWan(**TINY_VAE_KWARGS)
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=cfg.flow_shift,
        num_train_timesteps=1000,
    )
    return Cosmos3OmniPipeline(
        transformer=transformer,
        text_tokenizer=tokenizer,
        vae=vae,
        scheduler=scheduler,
        sound_tokenizer=None,
        safety_checker=None,
        enable_safety_checker=False,  # a trained toy policy for a simulated task; cosmos_guardrail is absent
    )


def encode_frames(
    pipe: Any,
    frames: np.ndarray,
    shape: PolicyShape,
    device: Any = "cpu",
    progress: Callable[[int], None] | None = None,
    batch_size: int = 32,
) -> tuple[Any, int, int]:
    """Raw VAE latents ``[N, C, T, h, w]`` of the frames, encoded as a policy call does, and the canvas.

    ``batch_size`` frames at a time go through the pipeline's own conditioning code (as a batch of one-frame
    videos in [0, 1], which it treats exactly like one PIL image each; ``test_train_tiny_policy`` checks) and
    then through the VAE. Why batches: one clip at a time left a GPU idle, and encoding was most of a short
    training run.
    """
    import torch
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import retrieve_latents

    out = []
    height = width = 0
    dev = torch.device(device)
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            part = torch.from_numpy(np.ascontiguousarray(frames[start : start + batch_size])).to(dev)
            videos = part.permute(0, 3, 1, 2).unsqueeze(1).float() / 255.0  # [B, 1 frame, 3, H, W]
            clips, image_size, height, width = pipe._prepare_action_video_conditioning(
                videos, shape.resolution_tier, shape.chunk_size + 1, device=dev, dtype=torch.float32
            )
            mu = retrieve_latents(pipe.vae.encode(clips), sample_mode="argmax")
            out.append(pipe._remove_action_video_padding_from_latent(mu, image_size))
            if progress is not None:
                progress(start + part.shape[0])
    return torch.cat(out), height, width


def frames_fingerprint(frames: np.ndarray, shape: PolicyShape) -> str:
    """A short identity of a frame set and the policy shape it is encoded for (a latent cache's key).

    Why a sample and not every byte: hashing tens of GB of frames costs more than encoding them; the shape,
    64 evenly spaced frames and the encoding settings tell apart any two sets a user is likely to mix up.
    """
    h = hashlib.sha256(
        repr((frames.shape, str(frames.dtype), shape.resolution_tier, shape.chunk_size)).encode()
    )
    for i in np.linspace(0, len(frames) - 1, num=min(64, len(frames)), dtype=np.int64):
        h.update(np.ascontiguousarray(frames[i]).tobytes())
    return h.hexdigest()[:16]


def encode_frames_cached(
    pipe: Any,
    frames: np.ndarray,
    shape: PolicyShape,
    device: Any,
    cache: str | Path | None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Any, int, int]:
    """``encode_frames``, read from / written to ``cache`` when given (a ``.pt`` file).

    Why: a training run continued in a second session re-encodes the same frames, which took minutes of a
    leased GPU. The cache holds the fingerprint of the frames and the VAE, and is refused, naming both, for
    another frame set or VAE.
    """
    import torch

    # The VAE is seeded from the training config, so its weights are part of the key.
    vae = hashlib.sha256()
    for name, tensor in sorted(pipe.vae.state_dict().items()):
        vae.update(name.encode())
        vae.update(tensor.detach().float().cpu().numpy().tobytes())
    key = f"{frames_fingerprint(frames, shape)}-vae{vae.hexdigest()[:8]}"
    path = Path(cache) if cache is not None else None
    if path is not None and path.is_file():
        saved = torch.load(path, map_location=torch.device(device), weights_only=True)
        if saved["fingerprint"] != key:
            raise ValueError(
                f"latent cache {path} was written for frames {saved['fingerprint']}, these are {key}; "
                "delete it or give another path"
            )
        return saved["latents"], int(saved["height"]), int(saved["width"])
    latents, height, width = encode_frames(pipe, frames, shape, device, progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"fingerprint": key, "latents": latents, "height": height, "width": width}, path)
    return latents, height, width


def set_latent_stats(pipe: Any, raw_latents: Any) -> tuple[list[float], list[float]]:
    """Set the VAE's ``latents_mean/std`` (config and the pipeline's cached copies) from ``[N, C, ...]``."""
    import torch

    per_channel = raw_latents.transpose(0, 1).reshape(raw_latents.shape[1], -1).double().cpu()
    mean = [round(float(v), 6) for v in per_channel.mean(dim=1)]
    std = [round(max(float(v), 1e-6), 6) for v in per_channel.std(dim=1)]
    pipe.vae.register_to_config(latents_mean=mean, latents_std=std)
    pipe._vae_latents_mean = torch.tensor(mean, dtype=pipe.vae.dtype)
    pipe._vae_latents_inv_std = 1.0 / torch.tensor(std, dtype=pipe.vae.dtype)
    return mean, std


def reinit_action_heads(transformer: Any) -> None:
    """Fan-in scaled init of the domain-aware action projections (their Embedding default is N(0, 1))."""
    import torch

    for head in (transformer.action_proj_in, transformer.action_proj_out):
        torch.nn.init.normal_(head.fc.weight, std=1.0 / math.sqrt(head.input_size))
        torch.nn.init.zeros_(head.bias.weight)


def load_transformer_weights(transformer: Any, pipeline_dir: str | Path) -> None:
    """Continue from a saved pipeline's transformer (same size; a new run's schedule starts over)."""
    from safetensors.torch import load_file

    path = Path(pipeline_dir) / "transformer" / "diffusion_pytorch_model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"--init-from: no transformer weights at {path}")
    missing, unexpected = transformer.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"--init-from {pipeline_dir}: another transformer size (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]})"
        )


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train_policy(
    demos: DemoSet,
    cfg: TrainConfig,
    shape: PolicyShape,
    device: str = "cpu",
    on_step: Callable[[int, float, float], None] | None = None,
    on_encode: Callable[[int], None] | None = None,
    time_limit_s: float | None = None,
    init_from: str | Path | None = None,
    latents_cache: str | Path | None = None,
) -> TrainResult:
    """Train on ``demos``; ``on_step(step, loss, action_loss)`` after each step (for a progress bar).

    ``latents_cache``: a ``.pt`` file for the encoded frames (``encode_frames_cached``).

    ``time_limit_s`` is a safety net for leased machines: training stops after the step that crosses it
    (``TrainResult.losses`` then has fewer than ``cfg.steps`` entries; the record says so).

    Batches and sigmas are drawn on the CPU from ``cfg.seed``; the noise is drawn on the training device (from
    the same seed), because drawing it on the CPU and copying it held a GPU step back. One seed on one device
    gives the same weights; a GPU and a CPU run see different noise.
    """
    import torch
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import _EMBODIMENT_TO_DOMAIN_ID

    from cosmos_ros.runtime.loader import domain_raw_width, resolve_device

    if demos.chunk_size != shape.chunk_size:
        raise ValueError(
            f"demonstrations have chunks of {demos.chunk_size}, the policy shape {shape.chunk_size}"
        )
    dev = resolve_device(device)
    torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    width = domain_raw_width(shape.domain_name)
    stats = ActionStats.from_actions(demos.actions, width)
    pipe = build_pipeline(cfg, action_dim=width).to(dev)
    raw_latents, height, width_px = encode_frames_cached(
        pipe, demos.frames, shape, dev, latents_cache, on_encode
    )
    set_latent_stats(pipe, raw_latents)
    mean = pipe._vae_latents_mean.to(dev).view(1, -1, 1, 1, 1)
    latents = (raw_latents - mean) * pipe._vae_latents_inv_std.to(dev).view(1, -1, 1, 1, 1)
    actions = torch.from_numpy(stats.normalize(demos.actions)).to(dev)

    transformer = pipe.transformer
    torch.manual_seed(cfg.seed)
    if init_from is not None:
        load_transformer_weights(transformer, init_from)
    else:
        reinit_action_heads(transformer)
    transformer.train()
    pipe.vae.requires_grad_(False)
    prompts = PromptCache(pipe, (1, *tuple(latents.shape[1:])), shape, height, width_px, dev)
    domain = _EMBODIMENT_TO_DOMAIN_ID[shape.domain_name]
    opt = torch.optim.AdamW(transformer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    goals = [str(g) for g in demos.goals]
    result = TrainResult(pipe=pipe, stats=stats)
    for step in range(cfg.steps):
        rows = rng.integers(len(demos), size=cfg.batch_size)
        sigmas = np.clip(warp_sigma(rng.uniform(size=cfg.batch_size), cfg.flow_shift), 1e-3, 1.0)
        empty = rng.uniform(size=cfg.batch_size) < cfg.empty_prompt_prob
        eps_v = torch.randn((cfg.batch_size, *tuple(latents.shape[1:])), generator=gen, device=dev)
        eps_a = torch.randn((cfg.batch_size, *tuple(actions.shape[1:])), generator=gen, device=dev)
        keys = ["" if drop else goals[r] for r, drop in zip(rows, empty, strict=True)]
        opt.zero_grad(set_to_none=True)
        total = action_total = torch.zeros((), device=dev)
        for key in sorted(set(keys)):  # one batched pass per distinct prompt (same token layout)
            sel = [i for i, k in enumerate(keys) if k == key]
            idx = torch.as_tensor(rows[sel], device=dev)
            packed = prompts.unconditional if key == "" else prompts.get(key)
            loss, loss_a = flow_loss(
                transformer,
                packed,
                latents[idx],
                actions[idx],
                torch.as_tensor(sigmas[sel], dtype=torch.float32, device=dev),
                eps_v[sel],
                eps_a[sel],
                torch.full((len(sel),), domain, dtype=torch.long, device=dev),
                cfg.vision_weight,
            )
            weight = len(sel) / cfg.batch_size
            total = total + weight * loss
            action_total = action_total + weight * loss_a.detach()
        total.backward()
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        result.losses.append(float(total.detach()))
        result.action_losses.append(float(action_total))
        if on_step is not None:
            on_step(step, result.losses[-1], result.action_losses[-1])
        if time_limit_s is not None and time.perf_counter() - t_start > time_limit_s:
            break
    transformer.eval()
    pipe.to(torch.device("cpu"))
    result.seconds = time.perf_counter() - t_start
    return result


def save_policy(
    result: TrainResult,
    out_dir: str | Path,
    cfg: TrainConfig,
    shape: PolicyShape,
    demos: DemoSet,
    profile_name: str,
    joint_names: tuple[str, ...] = PANDA_JOINT_NAMES,
    frame_id: str = "panda_link0",
) -> Path:
    """``save_pretrained`` the pipeline, then write its action-space profile and the training record."""
    import yaml

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.pipe.save_pretrained(out, safe_serialization=True)
    meta = demos.metadata
    source = str(meta.get("source", "simulator" if "expert_success" in meta else "unknown"))
    profile = profile_mapping(
        result.stats,
        name=profile_name,
        domain_name=shape.domain_name,
        joint_names=joint_names,
        action_rate_hz=shape.fps,
        frame_id=frame_id,
        description=(
            f"Panda joint targets (rad) + gripper (m), absolute; statistics computed by "
            f"cosmos_ros.tools.train_tiny_policy from {len(demos)} {source} demonstration rows."
        ),
    )
    header = (
        "# Written by cosmos_ros.tools.train_tiny_policy: the action space of the tiny policy beside it.\n"
        "# The normalisation statistics are the training data's (mean/std per column), not placeholders.\n"
    )
    (out / PROFILE_FILE).write_text(header + yaml.safe_dump(profile, sort_keys=False))
    record = {
        "train_config": asdict(cfg),
        "policy_shape": asdict(shape),
        "demos": {
            "rows": len(demos),
            "episodes": int(np.unique(demos.episode).size),
            "goals": sorted({str(g) for g in demos.goals}),
            "source": source,
        },
        "steps_done": len(result.losses),
        "final_loss": result.losses[-1] if result.losses else None,
        "final_action_loss": result.action_losses[-1] if result.action_losses else None,
        "loss_first_10_steps": float(np.mean(result.losses[:10])) if result.losses else None,
        "loss_last_10_steps": float(np.mean(result.losses[-10:])) if result.losses else None,
        "seconds": round(result.seconds, 1),
    }
    (out / TRAINING_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return out
