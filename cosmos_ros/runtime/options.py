"""Inference options of the policy runtime, validated once at configuration time.

Why separate from ``PolicyRequest``: options come from configuration (ROS parameters, CLI flags) and should be
rejected when the planner is configured, with a message naming the option, not when the first image
arrives. A request is then options + one image + one goal. The accepted values mirror ``PolicyRequest`` so a
valid ``PolicyOptions`` always builds a valid request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from cosmos_ros.runtime.backend import CHUNK_MULTIPLE, RESOLUTION_TIERS, VIEW_POINTS, PolicyRequest


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class PolicyOptions:
    """Knobs of one policy call.

    Attributes:
        num_inference_steps: Denoising steps (>= 1); latency grows linearly with it.
        guidance_scale: Classifier-free guidance (>= 1.0; 1.0 skips the unconditional pass, halving cost).
        chunk_size: Actions per plan; a positive multiple of 4 (the Wan VAE keeps 1 + 4k frames).
        resolution_tier: Conditioning canvas tier, one of 256, 480, 704, 720; match the camera resolution.
        view_point: Camera perspective label the model was trained with (ego_view, third_person_view,
            wrist_view, concat_view).
        fps: Frame rate told to the model, which ties one action to one frame, so the plan's step period is
            ``1 / fps``. ``None`` uses the action-space profile's ``action_rate_hz``.
        seed: Seed of the initial noise; same seed + inputs + weights -> same actions.
        decode_video: Also decode the predicted frames (an extra VAE decode; actions do not need it).
    """

    num_inference_steps: int = 30
    guidance_scale: float = 1.0
    chunk_size: int = 16
    resolution_tier: int = 256
    view_point: str = "ego_view"
    fps: float | None = None
    seed: int = 0
    decode_video: bool = False

    def __post_init__(self) -> None:
        if not _is_int(self.num_inference_steps) or self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be an int >= 1, got {self.num_inference_steps!r}")
        if (
            not _is_number(self.guidance_scale)
            or not math.isfinite(self.guidance_scale)
            or self.guidance_scale < 1.0
        ):
            raise ValueError(f"guidance_scale must be a finite number >= 1.0, got {self.guidance_scale!r}")
        if not _is_int(self.chunk_size) or self.chunk_size <= 0 or self.chunk_size % CHUNK_MULTIPLE != 0:
            raise ValueError(
                f"chunk_size must be a positive multiple of {CHUNK_MULTIPLE} (the VAE keeps 1 + 4k frames), "
                f"got {self.chunk_size!r}"
            )
        if not _is_int(self.resolution_tier) or self.resolution_tier not in RESOLUTION_TIERS:
            raise ValueError(
                f"resolution_tier must be one of {RESOLUTION_TIERS}, got {self.resolution_tier!r}"
            )
        if self.view_point not in VIEW_POINTS:
            raise ValueError(f"view_point must be one of {VIEW_POINTS}, got {self.view_point!r}")
        if self.fps is not None and (
            not _is_number(self.fps) or not math.isfinite(self.fps) or self.fps <= 0
        ):
            raise ValueError(
                f"fps must be a finite number > 0 (or None for the profile's rate), got {self.fps!r}"
            )
        if not _is_int(self.seed) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an int in [0, 2**63), got {self.seed!r}")
        if not isinstance(self.decode_video, (bool, np.bool_)):
            raise ValueError(f"decode_video must be a bool, got {self.decode_video!r}")

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> PolicyOptions:
        """Build from a mapping (e.g. ROS parameters); unknown keys are an error listing the valid ones."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"unknown policy options {unknown}; valid: {valid}")
        return cls(**data)

    def request(
        self,
        image: np.ndarray,
        prompt: str,
        domain_name: str,
        default_fps: float,
        seed: int | None = None,
    ) -> PolicyRequest:
        """A ``PolicyRequest`` for one image and goal (``seed`` overrides the configured one)."""
        return PolicyRequest(
            image=image,
            prompt=prompt,
            domain_name=domain_name,
            chunk_size=int(self.chunk_size),
            resolution_tier=int(self.resolution_tier),
            view_point=self.view_point,
            fps=float(self.fps if self.fps is not None else default_fps),
            num_inference_steps=int(self.num_inference_steps),
            guidance_scale=float(self.guidance_scale),
            seed=int(self.seed if seed is None else seed),
            decode_video=bool(self.decode_video),
        )
