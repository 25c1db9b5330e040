"""Safety limits of one action space, loaded from a YAML file and validated once.

Why a separate, frozen description: the safety node is the only path from a plan to an actuator topic, so
its limits must be explicit (``None`` means "no limit", never 0 or NaN), carry their units, and be checked
for consistency *before* anything streams. A limits file that is incomplete or inconsistent is refused with
a message naming the key, so a typo cannot silently disable a limit.

Units: every per-axis limit is in the axis' own unit (``unit``, e.g. ``rad`` or ``m``): positions in
``unit``, velocity in ``unit/s``, acceleration in ``unit/s^2``, jerk in ``unit/s^3``.

File layout (see ``config/limits/*.yaml`` for documented examples)::

    action_space: arm7_joints        # must equal Plan.action_space
    kind: joint                      # joint | pose
    frame_id: panda_link0            # must equal Plan.frame_id
    staleness_limit_s: 0.5           # reject plans whose stamp is further than this from now
    control_rate_hz: 100.0           # default streaming rate
    max_plan_steps: 1000             # a longer plan is rejected (plan_length)
    measured_max_speed_factor: 2.0   # measured jumps faster than this x max_velocity are refused; null: none
    axes:                            # ordered; must equal Plan.axis_names (pose: see POSE_AXES)
      - name: panda_joint1
        unit: rad
        min_position: -2.8973        # every limit key must be present; null = no limit
        max_position: 2.8973
        max_velocity: 2.175
        max_acceleration: 15.0
        max_jerk: 7500.0
        max_step_from_measured: 0.3
        measured_plausibility_margin: 0.1   # measured beyond the bounds by more than this is implausible
    orientation:                     # pose kind only (optional there)
      max_angular_velocity_rad_s: 1.0
      cone: {reference_xyzw: [1, 0, 0, 0], max_angle_rad: 0.8}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cosmos_ros.yaml_loading import load_yaml_unique

KINDS = ("joint", "pose")
# Column layout of pose action spaces: position (m), unit quaternion (x, y, z, w), gripper.
POSE_AXES = ("x", "y", "z", "qx", "qy", "qz", "qw", "gripper")
POSE_LINEAR_AXES = ("x", "y", "z", "gripper")
QUATERNION_AXES = ("qx", "qy", "qz", "qw")
AXIS_LIMIT_KEYS = (
    "min_position",
    "max_position",
    "max_velocity",
    "max_acceleration",
    "max_jerk",
    "max_step_from_measured",
)
_AXIS_KEYS = ("name", "unit", *AXIS_LIMIT_KEYS, "measured_plausibility_margin")
_TOP_REQUIRED = (
    "action_space",
    "kind",
    "frame_id",
    "staleness_limit_s",
    "control_rate_hz",
    "max_plan_steps",
    "measured_max_speed_factor",
    "axes",
)
_TOP_KEYS = (*_TOP_REQUIRED, "orientation", "description")
_ORIENTATION_KEYS = ("max_angular_velocity_rad_s", "cone")
_CONE_KEYS = ("reference_xyzw", "max_angle_rad")


class LimitsError(ValueError):
    """A limits file or object is incomplete or inconsistent; the message names the key."""


def _check_optional_number(where: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LimitsError(f"{where} must be a number or null, got {value!r}")
    if not math.isfinite(value):
        raise LimitsError(f"{where} must be finite (use null for 'no limit'), got {value!r}")
    return float(value)


def _check_positive(where: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise LimitsError(f"{where} must be > 0 (use null for 'no limit'), got {value}")


@dataclass(frozen=True)
class AxisLimits:
    """Limits of one axis (a joint, a Cartesian coordinate or the gripper).

    Attributes:
        name: Axis name as it appears in ``Plan.axis_names``.
        unit: Unit of the axis position (``rad``, ``m``, ...); rates are per second of it.
        min_position: Lower position bound in ``unit``; None = unbounded.
        max_position: Upper position bound in ``unit``; None = unbounded.
        max_velocity: Largest |velocity| in ``unit/s``; None = no limit.
        max_acceleration: Largest |acceleration| in ``unit/s^2``; None = no limit.
        max_jerk: Largest |jerk| in ``unit/s^3``; None = no limit.
        max_step_from_measured: Largest distance, in ``unit``, between a streamed setpoint target and the
            latest measured position; None = no limit.
        measured_plausibility_margin: A measured position further than this (in ``unit``, >= 0) outside
            ``[min_position, max_position]`` is implausible (a sensor or driver fault) and refused; None = no
            plausibility check on this axis (only meaningful for an unbounded axis).
    """

    name: str
    unit: str
    min_position: float | None = None
    max_position: float | None = None
    max_velocity: float | None = None
    max_acceleration: float | None = None
    max_jerk: float | None = None
    max_step_from_measured: float | None = None
    measured_plausibility_margin: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise LimitsError(f"axis name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.unit, str) or not self.unit:
            raise LimitsError(f"axes.{self.name}.unit must be a non-empty string, got {self.unit!r}")
        for key in AXIS_LIMIT_KEYS:
            value = _check_optional_number(f"axes.{self.name}.{key}", getattr(self, key))
            object.__setattr__(self, key, value)
        for key in ("max_velocity", "max_acceleration", "max_jerk", "max_step_from_measured"):
            _check_positive(f"axes.{self.name}.{key}", getattr(self, key))
        margin = _check_optional_number(
            f"axes.{self.name}.measured_plausibility_margin", self.measured_plausibility_margin
        )
        if margin is not None and margin < 0:
            raise LimitsError(f"axes.{self.name}.measured_plausibility_margin must be >= 0, got {margin}")
        object.__setattr__(self, "measured_plausibility_margin", margin)
        lo, hi = self.min_position, self.max_position
        if lo is not None and hi is not None and lo > hi:
            raise LimitsError(
                f"axes.{self.name}: min_position ({lo}) > max_position ({hi}); the bounds are inconsistent"
            )

    def __str__(self) -> str:
        u = self.unit

        def fmt(value: float | None, unit: str) -> str:
            return "unlimited" if value is None else f"{value:g} {unit}"

        margin = self.measured_plausibility_margin
        plausible = "any distance" if margin is None else fmt(margin, u)
        lo = "-inf" if self.min_position is None else f"{self.min_position:g}"
        hi = "+inf" if self.max_position is None else f"{self.max_position:g}"
        return (
            f"{self.name}: position [{lo}, {hi}] {u}, velocity {fmt(self.max_velocity, u + '/s')}, "
            f"acceleration {fmt(self.max_acceleration, u + '/s^2')}, jerk {fmt(self.max_jerk, u + '/s^3')}, "
            f"step from measured {fmt(self.max_step_from_measured, u)}, measured plausible within "
            f"{plausible} of the bounds"
        )


@dataclass(frozen=True)
class OrientationLimits:
    """Orientation limits of a pose action space (quaternion columns ``qx, qy, qz, qw``).

    Attributes:
        max_angular_velocity_rad_s: Largest rotation angle per second between consecutive setpoints,
            enforced by slerp-limiting the commanded orientation toward the target; None = no limit.
        cone_reference_xyzw: Reference orientation (unit quaternion, x y z w) of an orientation cone;
            None = no cone.
        cone_max_angle_rad: Largest rotation angle between a setpoint and the reference, in (0, pi];
            set if and only if ``cone_reference_xyzw`` is set.
    """

    max_angular_velocity_rad_s: float | None = None
    cone_reference_xyzw: tuple[float, float, float, float] | None = None
    cone_max_angle_rad: float | None = None

    def __post_init__(self) -> None:
        w = _check_optional_number("orientation.max_angular_velocity_rad_s", self.max_angular_velocity_rad_s)
        _check_positive("orientation.max_angular_velocity_rad_s", w)
        object.__setattr__(self, "max_angular_velocity_rad_s", w)
        angle = _check_optional_number("orientation.cone.max_angle_rad", self.cone_max_angle_rad)
        object.__setattr__(self, "cone_max_angle_rad", angle)
        ref = self.cone_reference_xyzw
        if (ref is None) != (angle is None):
            raise LimitsError(
                "orientation.cone needs both reference_xyzw and max_angle_rad, "
                f"got reference_xyzw={ref!r}, max_angle_rad={angle!r}"
            )
        if ref is not None and angle is not None:
            if len(ref) != 4 or not all(
                isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in ref
            ):
                raise LimitsError(f"orientation.cone.reference_xyzw must be 4 finite numbers, got {ref!r}")
            norm = math.sqrt(sum(c * c for c in ref))
            if abs(norm - 1.0) > 1e-3:
                raise LimitsError(
                    f"orientation.cone.reference_xyzw must be a unit quaternion, got norm {norm:.6g}"
                )
            object.__setattr__(self, "cone_reference_xyzw", tuple(float(c) / norm for c in ref))
            if not 0 < angle <= math.pi:
                raise LimitsError(f"orientation.cone.max_angle_rad must be in (0, pi], got {angle}")

    def __str__(self) -> str:
        w = self.max_angular_velocity_rad_s
        parts = [f"angular velocity {'unlimited' if w is None else f'{w:g} rad/s'}"]
        if self.cone_reference_xyzw is not None:
            ref = ", ".join(f"{c:g}" for c in self.cone_reference_xyzw)
            parts.append(f"cone {self.cone_max_angle_rad:g} rad around xyzw ({ref})")
        else:
            parts.append("no cone")
        return "orientation: " + ", ".join(parts)


@dataclass(frozen=True)
class SafetyLimits:
    """All limits of one action space.

    Attributes:
        action_space: Name of the action-space profile; plans with another name are rejected.
        kind: ``joint`` (axes = joint names + gripper) or ``pose`` (axes = ``POSE_AXES``).
        frame_id: Frame plans must be expressed in; plans in another frame are rejected.
        staleness_limit_s: Largest |now - plan.stamp_s| in seconds before a plan is rejected as stale.
        control_rate_hz: Default streaming rate in Hz (the node may override it).
        max_plan_steps: Largest number of steps in a plan; a longer plan is rejected (``plan_length``)
            before any arithmetic on it, which bounds the work of checking and clamping one plan.
        measured_max_speed_factor: A measured position that moved, since the previous sample, by more
            than this factor (>= 1) x ``max_velocity`` x (elapsed time + one control period) is implausible
            and refused; None = no jump check.
        axes: Limits of the linearly limited axes, in plan column order. Joint kind: one per plan column.
            Pose kind: exactly x, y, z, gripper (the workspace box and the gripper range); the quaternion
            columns are governed by ``orientation``.
        orientation: Pose kind only; None for joint kind (and allowed None for pose: no orientation limit
            beyond "normalisable").
    """

    action_space: str
    kind: str
    frame_id: str
    staleness_limit_s: float
    control_rate_hz: float
    axes: tuple[AxisLimits, ...]
    orientation: OrientationLimits | None = None
    max_plan_steps: int = 1000
    measured_max_speed_factor: float | None = None

    def __post_init__(self) -> None:
        for key in ("action_space", "frame_id"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value:
                raise LimitsError(f"{key} must be a non-empty string, got {value!r}")
        if self.kind not in KINDS:
            raise LimitsError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for key in ("staleness_limit_s", "control_rate_hz"):
            value = _check_optional_number(key, getattr(self, key))
            if value is None or value <= 0:
                raise LimitsError(f"{key} must be a number > 0, got {getattr(self, key)!r}")
            object.__setattr__(self, key, value)
        steps = self.max_plan_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise LimitsError(f"max_plan_steps must be an integer >= 1, got {steps!r}")
        factor = _check_optional_number("measured_max_speed_factor", self.measured_max_speed_factor)
        if factor is not None and factor < 1:
            raise LimitsError(f"measured_max_speed_factor must be >= 1 (or null: no check), got {factor}")
        object.__setattr__(self, "measured_max_speed_factor", factor)
        axes = tuple(self.axes)
        object.__setattr__(self, "axes", axes)
        if not axes:
            raise LimitsError("axes must list at least one axis")
        for axis in axes:
            if not isinstance(axis, AxisLimits):
                raise LimitsError(f"axes entries must be AxisLimits, got {type(axis).__name__}")
        names = [a.name for a in axes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise LimitsError(f"axes: duplicate axis names {duplicates}")
        if self.kind == "pose":
            unknown = [n for n in names if n not in POSE_LINEAR_AXES]
            if unknown:
                raise LimitsError(
                    f"axes: unknown axis {unknown[0]!r} for kind pose; valid names are {POSE_LINEAR_AXES} "
                    f"(quaternion columns are limited under 'orientation')"
                )
            missing = [n for n in POSE_LINEAR_AXES if n not in names]
            if missing:
                raise LimitsError(
                    f"axes: missing axis {missing[0]!r} for kind pose (need {POSE_LINEAR_AXES})"
                )
        else:
            reserved = [n for n in names if n in QUATERNION_AXES]
            if reserved:
                raise LimitsError(f"axes: {reserved[0]!r} is a quaternion column, not valid for kind joint")
            if self.orientation is not None:
                raise LimitsError("orientation is only valid for kind pose")

    @property
    def axis_names(self) -> tuple[str, ...]:
        """Column names a plan must carry, in order."""
        if self.kind == "pose":
            return POSE_AXES
        return tuple(a.name for a in self.axes)

    @property
    def num_axes(self) -> int:
        return len(self.axis_names)

    def axis(self, name: str) -> AxisLimits:
        """Limits of the named linear axis.

        Raises:
            KeyError: naming the valid axes, if ``name`` is not a linearly limited axis.
        """
        for a in self.axes:
            if a.name == name:
                return a
        raise KeyError(f"no linear axis {name!r}; valid: {[a.name for a in self.axes]}")

    def column_arrays(self, unlimited: float) -> dict[str, np.ndarray]:
        """Per-column limit arrays in plan column order, for the vectorised limiter.

        ``unlimited`` stands in for None *inside* the arithmetic only (a large finite number, so no
        ``inf * 0`` NaN can appear); the public limits keep None. Quaternion columns are unlimited here:
        orientation is limited separately.

        Returns:
            Dict with keys ``min_position``, ``max_position`` (lower uses ``-unlimited``), ``max_velocity``,
            ``max_acceleration``, ``max_jerk``, ``max_step_from_measured``, each a float64 ``[D]`` array.
        """
        names = self.axis_names
        out = {k: np.full(len(names), unlimited, dtype=np.float64) for k in AXIS_LIMIT_KEYS}
        out["min_position"][:] = -unlimited
        by_name = {a.name: a for a in self.axes}
        for i, name in enumerate(names):
            axis = by_name.get(name)
            if axis is None:
                continue
            for key in AXIS_LIMIT_KEYS:
                value = getattr(axis, key)
                if value is not None:
                    out[key][i] = value
        return out

    def __str__(self) -> str:
        factor = self.measured_max_speed_factor
        jump = "unchecked" if factor is None else f"{factor:g}"
        lines = [
            f"SafetyLimits {self.action_space!r} ({self.kind}, frame {self.frame_id!r}, "
            f"staleness {self.staleness_limit_s:g} s, control rate {self.control_rate_hz:g} Hz, "
            f"at most {self.max_plan_steps} steps per plan, measured jump factor {jump})"
        ]
        lines += [f"  {a}" for a in self.axes]
        if self.orientation is not None:
            lines.append(f"  {self.orientation}")
        return "\n".join(lines)


def _reject_unknown(where: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise LimitsError(f"{where}{key}: unknown key; valid keys are {allowed}")


def limits_from_dict(data: Any) -> SafetyLimits:
    """Build and validate ``SafetyLimits`` from the parsed YAML structure.

    Raises:
        LimitsError: naming the offending key (missing, unknown, wrong type, inconsistent).
    """
    if not isinstance(data, Mapping):
        raise LimitsError(f"limits file must be a mapping at the top level, got {type(data).__name__}")
    for key in _TOP_REQUIRED:
        if key not in data:
            raise LimitsError(f"{key}: missing required key")
    _reject_unknown("", data, _TOP_KEYS)
    raw_axes = data["axes"]
    if not isinstance(raw_axes, list):
        raise LimitsError(f"axes must be a list of axis mappings, got {type(raw_axes).__name__}")
    axes = []
    for i, raw in enumerate(raw_axes):
        if not isinstance(raw, Mapping):
            raise LimitsError(f"axes[{i}] must be a mapping, got {type(raw).__name__}")
        name = raw.get("name", f"[{i}]")
        for key in _AXIS_KEYS:
            if key not in raw:
                raise LimitsError(f"axes.{name}.{key}: missing required key (use null for 'no limit')")
        _reject_unknown(f"axes.{name}.", raw, _AXIS_KEYS)
        axes.append(AxisLimits(**{k: raw[k] for k in _AXIS_KEYS}))
    orientation = None
    raw_or = data.get("orientation")
    if raw_or is not None:
        if not isinstance(raw_or, Mapping):
            raise LimitsError(f"orientation must be a mapping, got {type(raw_or).__name__}")
        _reject_unknown("orientation.", raw_or, _ORIENTATION_KEYS)
        if "max_angular_velocity_rad_s" not in raw_or:
            raise LimitsError(
                "orientation.max_angular_velocity_rad_s: missing required key (null = no limit)"
            )
        cone = raw_or.get("cone")
        ref = angle = None
        if cone is not None:
            if not isinstance(cone, Mapping):
                raise LimitsError(f"orientation.cone must be a mapping, got {type(cone).__name__}")
            _reject_unknown("orientation.cone.", cone, _CONE_KEYS)
            for key in _CONE_KEYS:
                if key not in cone:
                    raise LimitsError(f"orientation.cone.{key}: missing required key")
            ref, angle = cone["reference_xyzw"], cone["max_angle_rad"]
            if not isinstance(ref, (list, tuple)):
                raise LimitsError(f"orientation.cone.reference_xyzw must be a list of 4 numbers, got {ref!r}")
            ref = tuple(ref)
        orientation = OrientationLimits(raw_or["max_angular_velocity_rad_s"], ref, angle)
    return SafetyLimits(
        action_space=data["action_space"],
        kind=data["kind"],
        frame_id=data["frame_id"],
        staleness_limit_s=data["staleness_limit_s"],
        control_rate_hz=data["control_rate_hz"],
        axes=tuple(axes),
        orientation=orientation,
        max_plan_steps=data["max_plan_steps"],
        measured_max_speed_factor=data["measured_max_speed_factor"],
    )


def load_limits(path: str | Path) -> SafetyLimits:
    """Load and validate a limits YAML file.

    Args:
        path: File to read.

    Raises:
        LimitsError: the file is not valid YAML, or incomplete/inconsistent (message names the key and
            the file).
        OSError: the file cannot be read.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = load_yaml_unique(text, str(path))
    except yaml.YAMLError as exc:
        raise LimitsError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return limits_from_dict(data)
    except LimitsError as exc:
        raise LimitsError(f"{path}: {exc}") from exc
