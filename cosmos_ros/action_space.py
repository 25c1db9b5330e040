"""Action-space profiles: what the model's normalised action columns mean in physical units.

Why a profile: ``Cosmos3OmniPipeline`` returns ``[chunk, W]`` actions in the model's *normalised* space for an
embodiment ``domain_name`` and ships no statistics to undo that normalisation; the meaning of each column
(position, 6D rotation, gripper, joints), its scale, whether it is absolute or a delta, the rate and the frame
all come from the data the checkpoint was trained on. One YAML file per robot under
``config/action_spaces/`` carries that knowledge, so the runtime stays generic and a wrong guess is visible in
one reviewed file rather than hidden in code.

Decoding (``ActionSpaceProfile.decode``): de-normalise per raw dim, then per block:
- ``position`` (3 raw) -> x, y, z (m);
- ``rotation_6d`` (6 raw) -> qx, qy, qz, qw (Gram–Schmidt, Zhou et al. 2019; see ``cosmos_ros.rotation``);
- ``gripper`` (1 raw) -> gripper (always absolute);
- ``joint_positions`` (N raw) -> one axis per joint name (rad or m);
- ``unused`` (N raw) -> nothing (columns the domain has but this robot does not use).
With ``semantics: delta``, positions/joints are cumulative sums added to a reference state and rotations are
composed onto the reference orientation (body-frame deltas: ``R_k = R_ref · dR_1 ··· dR_k``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_ros.rotation import (
    matrix_to_quaternion,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
)

BLOCK_KINDS = ("position", "rotation_6d", "gripper", "joint_positions", "unused")
_FIXED_WIDTH = {"position": 3, "rotation_6d": 6, "gripper": 1}
_DEFAULT_NAMES = {
    "position": ("x", "y", "z"),
    "rotation_6d": ("qx", "qy", "qz", "qw"),
    "gripper": ("gripper",),
}
NORMALIZATIONS = ("mean_std", "min_max", "none")
SEMANTICS = ("absolute", "delta")
ROTATION_6D_LAYOUTS = ("columns", "rows")


class UnknownProfileError(KeyError):
    """No action-space profile of that name; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ActionBlock:
    """A contiguous group of raw action columns with one meaning.

    Attributes:
        kind: One of ``BLOCK_KINDS``.
        width: Raw columns the block consumes (fixed for position 3, rotation_6d 6, gripper 1).
        names: Output axis names the block produces (defaults: x,y,z / qx,qy,qz,qw / gripper; joint names for
            ``joint_positions``; empty for ``unused``).
    """

    kind: str
    width: int
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"block kind must be one of {BLOCK_KINDS}, got {self.kind!r}")
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
            raise ValueError(f"block width must be an int >= 1, got {self.width!r} (kind {self.kind})")
        fixed = _FIXED_WIDTH.get(self.kind)
        if fixed is not None and self.width != fixed:
            raise ValueError(f"{self.kind} block width must be {fixed}, got {self.width}")
        expected_names = {
            "position": 3,
            "rotation_6d": 4,
            "gripper": 1,
            "joint_positions": self.width,
            "unused": 0,
        }[self.kind]
        if len(self.names) != expected_names:
            raise ValueError(
                f"{self.kind} block must produce {expected_names} axis names, "
                f"got {len(self.names)}: {self.names}"
            )
        for n in self.names:
            if not isinstance(n, str) or not n:
                raise ValueError(f"axis names must be non-empty strings, got {n!r} in {self.kind} block")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ActionBlock:
        """Build from a YAML mapping ``{kind, width?, names?}``; width/names default per kind."""
        if not isinstance(data, Mapping):
            raise ValueError(f"each block must be a mapping, got {data!r}")
        unknown = set(data) - {"kind", "width", "names"}
        if unknown:
            raise ValueError(f"unknown block keys {sorted(unknown)} (allowed: kind, width, names)")
        kind = data.get("kind")
        if kind not in BLOCK_KINDS:
            raise ValueError(f"block kind must be one of {BLOCK_KINDS}, got {kind!r}")
        names = tuple(data.get("names", _DEFAULT_NAMES.get(kind, ())))
        if kind == "joint_positions":
            width = int(data.get("width", len(names)))
        else:
            width = data.get("width", _FIXED_WIDTH.get(kind))
        return cls(kind=kind, width=width, names=names)


@dataclass(frozen=True)
class Normalization:
    """Per-raw-dim statistics the checkpoint's training data was normalised with.

    ``mean_std``: ``x = v * std + mean``. ``min_max`` (to [-1, 1]): ``x = (v + 1) / 2 * (max - min) + min``.
    ``none``: values are used as they come. ``a``/``b`` hold mean/std or min/max respectively.
    """

    kind: str
    a: tuple[float, ...] = ()
    b: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in NORMALIZATIONS:
            raise ValueError(f"normalization kind must be one of {NORMALIZATIONS}, got {self.kind!r}")
        if self.kind == "none":
            if self.a or self.b:
                raise ValueError("normalization 'none' takes no statistics")
            return
        if len(self.a) != len(self.b):
            raise ValueError(f"normalization statistics differ in length: {len(self.a)} vs {len(self.b)}")
        for name, vals in (("a", self.a), ("b", self.b)):
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
                raise ValueError(f"normalization statistics must be finite numbers, got {name}={vals}")
        if self.kind == "mean_std" and any(s <= 0 for s in self.b):
            raise ValueError(f"normalization std must be > 0, got {self.b}")
        if self.kind == "min_max" and any(hi < lo for lo, hi in zip(self.a, self.b, strict=True)):
            raise ValueError(f"normalization max must be >= min, got min={self.a} max={self.b}")

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """De-normalise ``raw [T, W]`` (float64 out)."""
        x = np.asarray(raw, dtype=np.float64)
        if self.kind == "none":
            return x.copy()
        a, b = np.asarray(self.a), np.asarray(self.b)
        if self.kind == "mean_std":
            return x * b + a
        return (x + 1.0) * 0.5 * (b - a) + a


@dataclass(frozen=True)
class ActionSpaceProfile:
    """How to turn one domain's raw model actions into named physical setpoints.

    Attributes:
        name: Profile name (the YAML file stem).
        domain_name: Cosmos 3 embodiment domain (``CosmosActionCondition.domain_name``).
        blocks: Layout of the raw columns, in order; their widths sum to ``raw_width``.
        normalization: De-normalisation statistics over the ``raw_width`` columns.
        semantics: ``absolute`` or ``delta`` (cumulative from a reference state passed to ``decode``).
        action_rate_hz: Rate the checkpoint's actions were recorded at; the default ``fps`` told to the model.
        frame_id: Frame poses are expressed in (joint spaces: the robot base frame).
        action_delay_s: Time from the conditioning frame's capture to action 0 (>= 0).
        rotation_6d_layout: ``columns`` (Zhou et al.) or ``rows``; see ``cosmos_ros.rotation``.
        stats_are_placeholder: True while the statistics are not the checkpoint's; surfaced in logs.
        description: Free text (where the numbers come from).
    """

    name: str
    domain_name: str
    blocks: tuple[ActionBlock, ...]
    normalization: Normalization
    semantics: str = "absolute"
    action_rate_hz: float = 15.0
    frame_id: str = "base_link"
    action_delay_s: float = 0.0
    rotation_6d_layout: str = "columns"
    stats_are_placeholder: bool = False
    description: str = ""
    axis_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must be non-empty")
        if not self.domain_name:
            raise ValueError(f"domain_name must be non-empty (profile {self.name!r})")
        if not self.blocks:
            raise ValueError(f"blocks must not be empty (profile {self.name!r})")
        if self.semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}, got {self.semantics!r}")
        if not (isinstance(self.action_rate_hz, (int, float)) and math.isfinite(self.action_rate_hz)):
            raise ValueError(f"action_rate_hz must be a finite number, got {self.action_rate_hz!r}")
        if self.action_rate_hz <= 0:
            raise ValueError(f"action_rate_hz must be > 0, got {self.action_rate_hz}")
        if not (isinstance(self.action_delay_s, (int, float)) and math.isfinite(self.action_delay_s)):
            raise ValueError(f"action_delay_s must be a finite number, got {self.action_delay_s!r}")
        if self.action_delay_s < 0:
            raise ValueError(f"action_delay_s must be >= 0, got {self.action_delay_s}")
        if not self.frame_id:
            raise ValueError("frame_id must be non-empty")
        if self.rotation_6d_layout not in ROTATION_6D_LAYOUTS:
            raise ValueError(
                f"rotation_6d_layout must be one of {ROTATION_6D_LAYOUTS}, got {self.rotation_6d_layout!r}"
            )
        names = tuple(n for blk in self.blocks for n in blk.names)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"axis names must be unique, duplicated: {dupes}")
        if not names:
            raise ValueError(f"profile {self.name!r} produces no axes (only unused blocks)")
        object.__setattr__(self, "axis_names", names)
        if self.normalization.kind != "none" and len(self.normalization.a) != self.raw_width:
            raise ValueError(
                f"normalization statistics have {len(self.normalization.a)} entries, "
                f"but the blocks cover raw_width={self.raw_width} columns"
            )

    @property
    def raw_width(self) -> int:
        """Raw model columns the profile consumes (must equal the domain's width)."""
        return sum(b.width for b in self.blocks)

    @property
    def step_period_s(self) -> float:
        """Default time between consecutive actions (1 / action_rate_hz)."""
        return 1.0 / self.action_rate_hz

    @property
    def is_pose_space(self) -> bool:
        return any(b.kind in ("position", "rotation_6d") for b in self.blocks)

    def decode(
        self, raw: np.ndarray, reference: Sequence[float] | np.ndarray | None = None
    ) -> tuple[tuple[str, ...], np.ndarray]:
        """Turn raw normalised actions ``[T, raw_width]`` into ``(axis_names, values [T, D])`` (float64).

        Args:
            raw: Model output for this profile's domain (already sliced to the domain's width).
            reference: For ``delta`` profiles, the state the deltas start from, as a ``[D]`` vector in
                ``axis_names`` order (quaternions as qx, qy, qz, qw; the gripper entry is ignored since
                gripper commands are absolute). Must be ``None`` for ``absolute`` profiles.

        Raises:
            ValueError: Wrong shape, non-finite raw values, a missing/extra/ill-shaped reference.
            cosmos_ros.rotation.DegenerateRotationError: A 6D rotation cannot be orthonormalised.
        """
        arr = np.asarray(raw)
        if arr.ndim != 2 or arr.shape[1] != self.raw_width or arr.shape[0] < 1:
            raise ValueError(
                f"raw actions must have shape [T>=1, {self.raw_width}] for profile {self.name!r}, "
                f"got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"raw actions contain NaN or Inf (profile {self.name!r})")
        ref = self._check_reference(reference)
        x = self.normalization.apply(arr)
        cols: list[np.ndarray] = []
        col = 0  # raw column cursor
        out_col = 0  # decoded column cursor (indexes the reference)
        for blk in self.blocks:
            chunk = x[:, col : col + blk.width]
            col += blk.width
            n_out = len(blk.names)
            r = ref[out_col : out_col + n_out] if ref is not None else None
            out_col += n_out
            if blk.kind == "unused":
                continue
            if blk.kind == "rotation_6d":
                mats = rotation_6d_to_matrix(chunk, self.rotation_6d_layout)  # type: ignore[arg-type]
                if r is not None:
                    mats = _compose_deltas(quaternion_to_matrix(r), mats)
                cols.append(matrix_to_quaternion(mats))
            elif blk.kind == "gripper":
                cols.append(chunk)
            else:  # position, joint_positions
                cols.append(np.cumsum(chunk, axis=0) + r if r is not None else chunk)
        return self.axis_names, np.concatenate(cols, axis=1)

    def _check_reference(self, reference: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
        if self.semantics == "absolute":
            if reference is not None:
                raise ValueError(f"profile {self.name!r} is absolute; a reference state makes no sense")
            return None
        if reference is None:
            raise ValueError(f"profile {self.name!r} has delta semantics and needs a reference state")
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != (len(self.axis_names),) or not np.all(np.isfinite(ref)):
            raise ValueError(
                f"reference must be a finite [{len(self.axis_names)}] vector in order {self.axis_names}, "
                f"got shape {ref.shape}"
            )
        return ref

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], name: str | None = None) -> ActionSpaceProfile:
        """Build from a parsed YAML mapping (see ``config/action_spaces/*.yaml`` for the schema)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an action-space profile must be a mapping, got {type(data).__name__}")
        allowed = {
            "name",
            "domain_name",
            "blocks",
            "normalization",
            "semantics",
            "action_rate_hz",
            "frame_id",
            "action_delay_s",
            "rotation_6d_layout",
            "stats_are_placeholder",
            "description",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown profile keys {sorted(unknown)} (allowed: {sorted(allowed)})")
        blocks_data = data.get("blocks")
        if not isinstance(blocks_data, list):
            raise ValueError(f"blocks must be a list, got {blocks_data!r}")
        blocks = tuple(ActionBlock.from_mapping(b) for b in blocks_data)
        norm = data.get("normalization") or {"kind": "none"}
        if not isinstance(norm, Mapping):
            raise ValueError(f"normalization must be a mapping, got {norm!r}")
        kind = norm.get("kind")
        if kind == "mean_std":
            a, b = norm.get("mean"), norm.get("std")
        elif kind == "min_max":
            a, b = norm.get("min"), norm.get("max")
        else:
            a, b = (), ()
        normalization = Normalization(
            kind=str(kind), a=_floats(a, "normalization"), b=_floats(b, "normalization")
        )
        return cls(
            name=str(data.get("name") or name or ""),
            domain_name=str(data.get("domain_name", "")),
            blocks=blocks,
            normalization=normalization,
            semantics=data.get("semantics", "absolute"),
            action_rate_hz=data.get("action_rate_hz", 15.0),
            frame_id=str(data.get("frame_id", "base_link")),
            action_delay_s=data.get("action_delay_s", 0.0),
            rotation_6d_layout=data.get("rotation_6d_layout", "columns"),
            stats_are_placeholder=bool(data.get("stats_are_placeholder", False)),
            description=str(data.get("description", "")),
        )


def _compose_deltas(r_ref: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """``R_k = R_ref · dR_1 ··· dR_k`` for deltas ``[T, 3, 3]``."""
    out = np.empty_like(deltas)
    cur = r_ref
    for k in range(deltas.shape[0]):
        cur = cur @ deltas[k]
        out[k] = cur
    return out


def _floats(vals: Any, what: str) -> tuple[float, ...]:
    if vals is None:
        raise ValueError(f"{what} statistics are missing")
    if not isinstance(vals, (list, tuple)):
        raise ValueError(f"{what} statistics must be a list of numbers, got {vals!r}")
    out = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{what} statistics must be numbers, got {v!r}")
        out.append(float(v))
    return tuple(out)


def default_profile_dirs() -> tuple[Path, ...]:
    """Where shipped profiles live: the source tree's ``config/`` and the colcon install's ``share/``.

    Derived from this file's location (no ROS import): ``<repo>/cosmos_ros/action_space.py`` ->
    ``<repo>/config/action_spaces``; ``<prefix>/lib/pythonX.Y/site-packages/cosmos_ros/action_space.py`` ->
    ``<prefix>/share/cosmos_ros/config/action_spaces``.
    """
    here = Path(__file__).resolve().parent
    candidates = [here.parent / "config" / "action_spaces"]
    if len(here.parents) >= 4:
        candidates.append(here.parents[3] / "share" / "cosmos_ros" / "config" / "action_spaces")
    return tuple(p for p in candidates if p.is_dir())


def list_profiles(dirs: Iterable[str | Path] | None = None) -> list[str]:
    """Names of the profiles found in ``dirs`` (default: :func:`default_profile_dirs`)."""
    search = [Path(d) for d in dirs] if dirs is not None else list(default_profile_dirs())
    return sorted({p.stem for d in search if d.is_dir() for p in d.glob("*.yaml")})


def load_profile(name_or_path: str | Path, dirs: Iterable[str | Path] | None = None) -> ActionSpaceProfile:
    """Load a profile by name (searched in ``dirs``) or from an explicit ``.yaml`` path.

    Raises:
        UnknownProfileError: No such name; the message lists the valid names and where they were searched.
        ValueError: The file is not valid YAML or not a valid profile (message names the file).
    """
    import yaml

    from cosmos_ros.yaml_loading import load_yaml_unique

    text_name = str(name_or_path)
    path = Path(text_name)
    if text_name.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"action-space profile file not found: {path}")
    else:
        search = [Path(d) for d in dirs] if dirs is not None else list(default_profile_dirs())
        found = [d / f"{text_name}.yaml" for d in search if (d / f"{text_name}.yaml").is_file()]
        if not found:
            raise UnknownProfileError(
                f"unknown action space {text_name!r}; valid: {', '.join(list_profiles(search)) or '(none)'} "
                f"(profiles searched in {[str(d) for d in search]})"
            )
        path = found[0]
    try:
        data = load_yaml_unique(path.read_text(), str(path))
    except yaml.YAMLError as exc:
        raise ValueError(f"action-space profile {path} is not valid YAML: {exc}") from exc
    try:
        return ActionSpaceProfile.from_mapping(data, name=path.stem)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid action-space profile {path}: {exc}") from exc
