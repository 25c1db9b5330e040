"""The reference backend: one stock ``Cosmos3OmniPipeline`` call in action ``policy`` mode.

Why keep the stock call: it is the definition of "what the model does". Faster backends (``fast``,
``tensorrt``) are judged by their agreement with this one on the same ``PolicyRequest``, so it must not
reimplement or reorder anything. Per-stage timings are taken from the outside with PyTorch module hooks and
the pipeline's own step callback, which observe but never change the computation:

- ``prepare``: input checks, prompt tokenisation, image preprocessing and the VAE encode, up to the first
  transformer call;
- ``encode_image``: the VAE encoder's share of ``prepare``;
- ``denoise``: first transformer call -> end of the last scheduler step (``denoise_per_step`` = / steps);
- ``decode_video``: VAE decoder forward time (0 when ``decode_video`` is off: ``output_type="latent"`` skips
  the decode entirely, which the stock pipeline allows);
- ``other``: ``total`` minus the stages above (post-loop bookkeeping, NumPy conversion);
- ``total``: the whole call.
On CUDA, timestamps are taken after ``torch.cuda.synchronize()`` so they measure the GPU work, not launches.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from cosmos_ros.runtime.backend import PolicyRequest, RawPolicyOutput


class _StageClock:
    """Collects timestamps from hooks; synchronises CUDA first so the times mean device time."""

    def __init__(self, device: Any) -> None:
        import torch

        self._sync = torch.cuda.synchronize if getattr(device, "type", "cpu") == "cuda" else None
        self.first_transformer_call: float | None = None
        self.last_step_end: float | None = None
        self.steps = 0
        self.durations: dict[str, float] = {"encode_image": 0.0, "decode_video": 0.0}
        self._open: dict[str, float] = {}

    def now(self) -> float:
        if self._sync is not None:
            self._sync()
        return time.perf_counter()

    def start(self, stage: str) -> None:
        self._open[stage] = self.now()

    def stop(self, stage: str) -> None:
        t0 = self._open.pop(stage, None)
        if t0 is not None:
            self.durations[stage] += self.now() - t0


class DiffusersPolicyBackend:
    """``PolicyBackend`` over a loaded ``Cosmos3OmniPipeline`` (see ``cosmos_ros.runtime.loader``).

    Calls are serialised with a lock: the pipeline keeps per-call state on itself (guidance scale, current
    timestep, scheduler step index), so two concurrent calls would corrupt each other.
    """

    name = "diffusers"

    def __init__(self, pipe: Any, guardrail: bool = True) -> None:
        self.pipe = pipe
        # Passed as the pipeline's enable_safety_check: runs the Cosmos guardrail (text check of the goal,
        # video check of decoded frames) only if the loaded pipeline has a safety checker attached.
        self.guardrail = bool(guardrail)
        self._lock = threading.Lock()

    @property
    def action_dim(self) -> int:
        return int(self.pipe.transformer.config.action_dim)

    def check_request(self, request: PolicyRequest) -> int:
        """Model-dependent checks (the request validated itself); returns the domain's raw width."""
        from cosmos_ros.runtime.loader import domain_raw_width

        if request.prefix is not None:
            # diffusers 0.42.1: Cosmos3OmniPipeline._callback_tensor_inputs is ["latents"] (vision latents
            # only); the action latents are stepped by their own scheduler copy that no callback reaches, so
            # the stock call cannot be prefix-conditioned without reimplementing its loop (the fast backend).
            raise ValueError(
                "prefix conditioning needs backend 'fast' (or 'tensorrt'); the stock pipeline's "
                "step callback cannot reach its action latents"
            )
        width = domain_raw_width(request.domain_name)
        if width > self.action_dim:
            raise ValueError(
                f"domain {request.domain_name!r} needs {width} action columns but the model's "
                f"action_dim is {self.action_dim}"
            )
        return width

    def run(self, request: PolicyRequest) -> RawPolicyOutput:
        """One policy call: ``(image, prompt)`` -> ``[chunk, raw_width]`` normalised actions (+ frames)."""
        import torch
        from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import CosmosActionCondition

        # 1. Check inputs (model-dependent part; the request checked its own fields on construction).
        width = self.check_request(request)
        pipe = self.pipe
        device = pipe._get_execution_device()
        with self._lock:
            clock = _StageClock(device)
            t_start = clock.now()
            handles = self._install_hooks(clock)
            try:
                # 2. Explicit generator on the CPU: the initial noise is then the same on every device, so
                # backends and machines can be compared on one seed.
                generator = torch.Generator(device="cpu").manual_seed(int(request.seed))
                # The frame goes in as a PIL image: diffusers 0.42.1 treats a uint8 *array* as if it were
                # already scaled to [0, 1] (values up to 509 reached the VAE), while PIL images are scaled
                # correctly. The fast backend feeds the same values (test_fast_backend checks agreement).
                from PIL import Image

                image = Image.fromarray(np.ascontiguousarray(request.image))
                condition = CosmosActionCondition(
                    mode="policy",
                    chunk_size=request.chunk_size,
                    domain_name=request.domain_name,
                    resolution_tier=request.resolution_tier,
                    image=image,
                    view_point=request.view_point,
                )

                def on_step_end(_pipe: Any, _i: int, _t: Any, _kwargs: dict[str, Any]) -> dict[str, Any]:
                    clock.steps += 1
                    clock.last_step_end = clock.now()
                    return {}

                # 3. The stock call (it applies torch.no_grad() itself; the context makes that explicit).
                with torch.no_grad():
                    out = pipe(
                        prompt=request.prompt,
                        action=condition,
                        fps=float(request.fps),
                        num_inference_steps=request.num_inference_steps,
                        guidance_scale=float(request.guidance_scale),
                        generator=generator,
                        output_type="np" if request.decode_video else "latent",
                        enable_safety_check=self.guardrail,
                        callback_on_step_end=on_step_end,
                    )
                # 4. Outputs to NumPy.
                if not out.action:
                    raise RuntimeError("the pipeline returned no actions in policy mode")
                actions = out.action[0].float().cpu().numpy().astype(np.float32, copy=False)
                if actions.shape != (request.chunk_size, width):
                    raise RuntimeError(
                        f"pipeline returned actions of shape {actions.shape}, expected "
                        f"({request.chunk_size}, {width})"
                    )
                video = None
                if request.decode_video:
                    frames = np.asarray(out.video, dtype=np.float32)
                    video = np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)
            finally:
                for h in handles:
                    h.remove()
            t_end = clock.now()
        return RawPolicyOutput(actions=actions, video=video, timings=self._timings(clock, t_start, t_end))

    def _install_hooks(self, clock: _StageClock) -> list[Any]:
        pipe = self.pipe
        handles = []

        def first_call(_module: Any, _args: Any) -> None:
            if clock.first_transformer_call is None:
                clock.first_transformer_call = clock.now()

        handles.append(pipe.transformer.register_forward_pre_hook(first_call))
        for stage, module in (("encode_image", pipe.vae.encoder), ("decode_video", pipe.vae.decoder)):
            handles.append(module.register_forward_pre_hook(lambda _m, _a, s=stage: clock.start(s)))
            handles.append(module.register_forward_hook(lambda _m, _a, _o, s=stage: clock.stop(s)))
        return handles

    @staticmethod
    def _timings(clock: _StageClock, t_start: float, t_end: float) -> dict[str, float]:
        timings = {"total": t_end - t_start, **clock.durations}
        if clock.first_transformer_call is not None:
            timings["prepare"] = clock.first_transformer_call - t_start
            if clock.last_step_end is not None and clock.steps:
                timings["denoise"] = clock.last_step_end - clock.first_transformer_call
                timings["denoise_per_step"] = timings["denoise"] / clock.steps
                # Everything not attributed above (post-loop bookkeeping, moving outputs to NumPy).
                timings["other"] = (
                    timings["total"] - timings["prepare"] - timings["denoise"] - timings["decode_video"]
                )
        return timings


def make_diffusers_backend(pipe: Any, guardrail: bool = True, **options: Any) -> DiffusersPolicyBackend:
    """Backend factory for the runtime's registry (``backend="diffusers"``).

    Args:
        pipe: A loaded pipeline (``cosmos_ros.runtime.loader.load_pipeline``).
        guardrail: Run the pipeline's safety checker when one is attached (see the class).

    Raises:
        ValueError: Unknown option.
    """
    if options:
        raise ValueError(f"unknown diffusers backend options {sorted(options)}; valid: ['guardrail']")
    return DiffusersPolicyBackend(pipe, guardrail=guardrail)
