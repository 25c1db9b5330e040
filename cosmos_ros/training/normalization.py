"""Action normalisation computed from the demonstrations, and the action-space profile that undoes it.

Why mean/std (not min/max): flow matching mixes the data with unit Gaussian noise, so data of unit variance
per column puts every column on the noise's scale. A column that never varies (the gripper when it stays
open) gets ``std = STD_FLOOR``: its normalised value is then always 0 and a de-normalised prediction stays
within ``STD_FLOOR`` per unit of model error of the constant.

The model's raw width is the embodiment domain's (10 for ``robomind-franka``); the robot's ``A`` columns come
first and the rest are padded with normalised zeros (mean 0, std 1) and declared ``unused`` in the profile.
The planner de-normalises through that profile (``ActionSpaceProfile.decode``), so the statistics written
here are exactly the ones it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

STD_FLOOR = 1e-3


@dataclass(frozen=True)
class ActionStats:
    """Per-column statistics of the raw (domain-width) action space.

    Attributes:
        mean: ``[W]`` per-column mean (padding columns 0).
        std: ``[W]`` per-column standard deviation, ``>= STD_FLOOR`` (padding columns 1).
        used: Number of leading columns that carry robot actions (the rest are padding).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    used: int

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(
                f"mean and std must be non-empty and equal in length, got {self.mean}, {self.std}"
            )
        if not 1 <= self.used <= len(self.mean):
            raise ValueError(f"used must be in [1, {len(self.mean)}], got {self.used}")
        if not all(np.isfinite(self.mean)) or not all(np.isfinite(self.std)):
            raise ValueError(f"statistics must be finite, got mean={self.mean} std={self.std}")
        if min(self.std) < STD_FLOOR:
            raise ValueError(f"std must be >= {STD_FLOOR}, got {self.std}")

    @property
    def width(self) -> int:
        return len(self.mean)

    @classmethod
    def from_actions(cls, actions: np.ndarray, width: int) -> ActionStats:
        """Statistics of ``actions [N, T, A]`` (physical units), padded to ``width`` raw columns."""
        a = np.asarray(actions, dtype=np.float64)
        if a.ndim != 3 or a.shape[2] > width:
            raise ValueError(f"actions must be [N, T, A<={width}], got shape {a.shape}")
        flat = a.reshape(-1, a.shape[2])
        mean = np.zeros(width)
        std = np.ones(width)
        # Rounded to 6 decimals here, so the profile YAML (written from these) holds exactly the numbers the
        # model was trained with.
        mean[: a.shape[2]] = np.round(flat.mean(axis=0), 6)
        std[: a.shape[2]] = np.round(np.maximum(flat.std(axis=0), STD_FLOOR), 6)
        return cls(mean=tuple(mean.tolist()), std=tuple(std.tolist()), used=int(a.shape[2]))

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Physical ``[..., A]`` -> model space ``[..., W]`` (float32; padding columns 0)."""
        a = np.asarray(actions, dtype=np.float64)
        if a.shape[-1] != self.used:
            raise ValueError(f"actions must have {self.used} columns, got shape {a.shape}")
        out = np.zeros((*a.shape[:-1], self.width))
        out[..., : self.used] = (a - self.mean[: self.used]) / np.asarray(self.std[: self.used])
        return out.astype(np.float32)

    def denormalize(self, raw: np.ndarray) -> np.ndarray:
        """Model space ``[..., W]`` -> physical ``[..., A]`` (float64): the inverse of :meth:`normalize`."""
        r = np.asarray(raw, dtype=np.float64)
        if r.shape[-1] != self.width:
            raise ValueError(f"raw actions must have {self.width} columns, got shape {r.shape}")
        return r[..., : self.used] * np.asarray(self.std[: self.used]) + np.asarray(self.mean[: self.used])


def profile_mapping(
    stats: ActionStats,
    name: str,
    domain_name: str,
    joint_names: Sequence[str],
    action_rate_hz: float,
    frame_id: str,
    description: str,
) -> dict[str, Any]:
    """The action-space profile (``config/action_spaces`` schema) of ``joint_names`` + gripper + padding.

    Raises:
        ValueError: ``joint_names`` + gripper do not account for ``stats.used`` columns.
    """
    if len(joint_names) + 1 != stats.used:
        raise ValueError(
            f"{len(joint_names)} joint names + gripper = {len(joint_names) + 1} columns, "
            f"but the statistics cover {stats.used}"
        )
    blocks: list[dict[str, Any]] = [
        {"kind": "joint_positions", "names": list(joint_names)},
        {"kind": "gripper"},
    ]
    if stats.width > stats.used:
        blocks.append({"kind": "unused", "width": stats.width - stats.used})
    return {
        "name": name,
        "domain_name": domain_name,
        "description": description,
        "stats_are_placeholder": False,
        "semantics": "absolute",
        "action_rate_hz": float(action_rate_hz),
        "action_delay_s": 0.0,
        "frame_id": frame_id,
        "blocks": blocks,
        "normalization": {
            "kind": "mean_std",
            "mean": list(stats.mean),
            "std": list(stats.std),
        },
    }
