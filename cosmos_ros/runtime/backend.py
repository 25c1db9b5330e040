"""The contract every policy backend implements: one request in, raw normalised actions out.

Why a contract: the planner node and the benchmarks switch between the diffusers reference, the fast torch
path and TensorRT with one parameter (``backend``), and the agreement tests compare them on the same
``PolicyRequest``. Decoding to physical units happens downstream (``cosmos_ros.action_space``), never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

# The Wan VAE keeps 1 + 4k frames, so the policy's chunk (number of action transitions) must be 4k.
CHUNK_MULTIPLE = 4
RESOLUTION_TIERS = (256, 480, 704, 720)
VIEW_POINTS = ("ego_view", "third_person_view", "wrist_view", "concat_view")


@dataclass(frozen=True, eq=False)
class ActionPrefix:
    """Steps of the next chunk pinned to the chunk that executes while it is computed (real-time chunking).

    Built by ``cosmos_ros.rtc.build_prefix``; applied by backends that support it (``fast``) to the action
    tokens only, at every sampler step (see ``cosmos_ros.runtime.fast``).

    Attributes:
        actions: ``[chunk_size, raw_width]`` float32 targets in the model's normalised action space.
        weights: ``[chunk_size]`` float32 per-step strengths in [0, 1]; 1 = follow the target, 0 = free.
        frozen_steps: ``d``, the number of leading steps due before the new chunk can arrive (for reporting).
    """

    actions: np.ndarray
    weights: np.ndarray
    frozen_steps: int = 0

    def __post_init__(self) -> None:
        a, w = self.actions, self.weights
        if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype != np.float32:
            raise ValueError(f"prefix actions must be a [T, W] float32 array, got {getattr(a, 'shape', a)!r}")
        if not isinstance(w, np.ndarray) or w.shape != (a.shape[0],) or w.dtype != np.float32:
            raise ValueError(
                f"prefix weights must be a [{a.shape[0]}] float32 array, got {getattr(w, 'shape', w)}"
            )
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(w))):
            raise ValueError("prefix actions and weights must be finite")
        if np.any(w < 0) or np.any(w > 1):
            raise ValueError(f"prefix weights must be in [0, 1], got min {w.min()} max {w.max()}")
        if not 0 <= self.frozen_steps <= a.shape[0]:
            raise ValueError(f"frozen_steps must be in [0, {a.shape[0]}], got {self.frozen_steps}")


@dataclass(frozen=True)
class PolicyRequest:
    """Inputs of one policy call.

    Attributes:
        image: ``[H, W, 3]`` uint8 RGB conditioning frame (cameras already tiled for ``concat_view``).
        prompt: Goal text.
        domain_name: Cosmos 3 embodiment domain (selects the action projection, fixes the raw width).
        chunk_size: Number of action transitions to predict; a positive multiple of 4.
        resolution_tier: Conditioning canvas tier, one of ``RESOLUTION_TIERS``.
        view_point: Camera perspective label, one of ``VIEW_POINTS``.
        fps: Frame rate the model is told the video has (ties actions to time).
        num_inference_steps: Denoising steps.
        guidance_scale: Classifier-free guidance; 1.0 disables the unconditional pass.
        seed: Seed of the ``torch.Generator``; same seed, same inputs, same weights -> same output.
        decode_video: Decode predicted frames (costs a VAE decode; actions do not need it).
        prefix: Optional prefix conditioning (``ActionPrefix`` with ``chunk_size`` rows); backends that cannot
            apply it raise ``ValueError``.
    """

    image: np.ndarray
    prompt: str
    domain_name: str
    chunk_size: int = 16
    resolution_tier: int = 256
    view_point: str = "ego_view"
    fps: float = 15.0
    num_inference_steps: int = 30
    guidance_scale: float = 1.0
    seed: int = 0
    decode_video: bool = False
    prefix: ActionPrefix | None = None

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            shape = getattr(img, "shape", None)
            dtype = getattr(img, "dtype", None)
            raise ValueError(f"image must be a [H, W, 3] uint8 array, got shape {shape} dtype {dtype}")
        if img.shape[0] < 2 or img.shape[1] < 2:
            raise ValueError(f"image must be at least 2x2 pixels, got {img.shape[1]}x{img.shape[0]}")
        if self.chunk_size <= 0 or self.chunk_size % CHUNK_MULTIPLE != 0:
            raise ValueError(
                f"chunk_size must be a positive multiple of {CHUNK_MULTIPLE} (the VAE keeps 1 + 4k frames), "
                f"got {self.chunk_size}"
            )
        if self.resolution_tier not in RESOLUTION_TIERS:
            raise ValueError(f"resolution_tier must be one of {RESOLUTION_TIERS}, got {self.resolution_tier}")
        if self.view_point not in VIEW_POINTS:
            raise ValueError(f"view_point must be one of {VIEW_POINTS}, got {self.view_point!r}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {self.num_inference_steps}")
        if not self.guidance_scale >= 1.0:
            raise ValueError(f"guidance_scale must be >= 1.0, got {self.guidance_scale}")
        if self.prefix is not None and self.prefix.actions.shape[0] != self.chunk_size:
            raise ValueError(
                f"prefix has {self.prefix.actions.shape[0]} rows, chunk_size is {self.chunk_size}"
            )


@dataclass
class RawPolicyOutput:
    """What a backend returns.

    Attributes:
        actions: ``[chunk_size, raw_width]`` float32, in the model's normalised action space, already sliced
            to the domain's raw width.
        video: ``[F, H, W, 3]`` uint8 predicted frames when ``decode_video`` was set, else ``None``.
        timings: Seconds per stage (e.g. ``prepare``, ``encode_image``, ``denoise``, ``decode_video``,
            ``total``).
    """

    actions: np.ndarray
    video: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)


class PolicyBackend(Protocol):
    """A loaded model that answers policy requests."""

    name: str

    def run(self, request: PolicyRequest) -> RawPolicyOutput:
        """Run one policy call. Raises ValueError for requests the loaded model cannot serve."""
        ...
