"""Configuration of the closed-loop Panda simulation, loaded from ``config/sim/*.yaml`` and validated once.

Why frozen dataclasses: the gains, rates and task numbers decide what "success" means in the closed-loop
results, so a typo must fail loudly with the key's name rather than silently change the experiment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
GRIPPER = "gripper"
# The names the sim accepts setpoints for and publishes joint_states with (arm7_joints action space order).
JOINT_NAMES = (*ARM_JOINTS, GRIPPER)


class SimConfigError(ValueError):
    """A sim config file or object is incomplete or inconsistent; the message names the key."""


def _finite(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SimConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _positive(where: str, value: Any) -> float:
    out = _finite(where, value)
    if out <= 0:
        raise SimConfigError(f"{where} must be > 0, got {value!r}")
    return out


def _vector(where: str, value: Any, n: int) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise SimConfigError(f"{where} must be a list of {n} numbers, got {value!r}")
    return tuple(_finite(f"{where}[{i}]", v) for i, v in enumerate(value))


def _keys(where: str, data: Any, required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SimConfigError(f"{where} must be a mapping, got {data!r}")
    missing = [k for k in required if k not in data]
    unknown = [k for k in data if k not in required]
    if missing or unknown:
        raise SimConfigError(
            f"{where}: missing keys {missing}, unknown keys {unknown} (expected {list(required)})"
        )
    return data


@dataclass(frozen=True)
class PidGains:
    """Gains of one joint's PID (units: effort per unit error, per unit error·s, per unit velocity)."""

    kp: float
    ki: float
    kd: float
    i_clamp: float

    def __post_init__(self) -> None:
        for name in ("kp", "ki", "kd", "i_clamp"):
            value = _finite(name, getattr(self, name))
            if value < 0:
                raise SimConfigError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class CameraConfig:
    width: int
    height: int
    fov_deg: float
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    near: float
    far: float

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 2048:
                raise SimConfigError(f"camera.{name} must be an integer in [8, 2048], got {value!r}")
        if not 1.0 < self.fov_deg < 170.0:
            raise SimConfigError(f"camera.fov_deg must be in (1, 170), got {self.fov_deg}")
        if not 0 < self.near < self.far:
            raise SimConfigError(f"camera.near/far must satisfy 0 < near < far, got {self.near}, {self.far}")


@dataclass(frozen=True)
class TaskConfig:
    colours: tuple[str, ...]
    cube_size_m: float
    cube_x_range_m: tuple[float, float]
    cube_y_range_m: tuple[float, float]
    min_cube_separation_m: float
    success_distance_m: float
    approach_height_m: float
    time_limit_s: float
    home: tuple[float, ...]
    home_jitter_rad: float

    def __post_init__(self) -> None:
        known = set(COLOURS)
        if (
            len(self.colours) < 2
            or len(set(self.colours)) != len(self.colours)
            or not known.issuperset(self.colours)
        ):
            raise SimConfigError(
                f"task.colours must be >= 2 distinct names from {sorted(known)}, got {self.colours}"
            )
        for name in ("cube_x_range_m", "cube_y_range_m"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise SimConfigError(f"task.{name} must be [low, high] with low < high, got {[lo, hi]}")
        if len(self.home) != len(JOINT_NAMES):
            raise SimConfigError(
                f"task.home must have {len(JOINT_NAMES)} values (7 joints + gripper), got {self.home}"
            )
        if self.home_jitter_rad < 0:
            raise SimConfigError(f"task.home_jitter_rad must be >= 0, got {self.home_jitter_rad}")


# RGBA of the cube colours the goal text can name.
COLOURS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.9, 0.1, 0.1, 1.0),
    "green": (0.1, 0.8, 0.1, 1.0),
    "blue": (0.1, 0.2, 0.9, 1.0),
    "yellow": (0.9, 0.9, 0.1, 1.0),
}


@dataclass(frozen=True)
class SimConfig:
    physics_hz: float
    tick_s: float
    cmd_timeout_s: float
    gravity_compensation: bool
    pid: dict[str, PidGains]
    camera: CameraConfig
    task: TaskConfig

    def __post_init__(self) -> None:
        _positive("physics_hz", self.physics_hz)
        _positive("tick_s", self.tick_s)
        _positive("cmd_timeout_s", self.cmd_timeout_s)
        if self.physics_hz < 240.0:
            raise SimConfigError(f"physics_hz must be >= 240 (stiff PID loops), got {self.physics_hz}")
        if abs(self.tick_s * self.physics_hz - round(self.tick_s * self.physics_hz)) > 1e-6:
            raise SimConfigError(
                f"tick_s * physics_hz must be an integer, got {self.tick_s} * {self.physics_hz}"
            )
        if set(self.pid) != set(JOINT_NAMES):
            raise SimConfigError(
                f"pid must have gains for exactly {list(JOINT_NAMES)}, got {sorted(self.pid)}"
            )
        if self.cmd_timeout_s <= self.tick_s:
            raise SimConfigError(
                f"cmd_timeout_s must exceed tick_s, got {self.cmd_timeout_s} <= {self.tick_s}"
            )

    @property
    def physics_dt(self) -> float:
        return 1.0 / self.physics_hz

    @property
    def steps_per_tick(self) -> int:
        return round(self.tick_s * self.physics_hz)

    def with_camera_size(self, width: int, height: int) -> SimConfig:
        """The same config with another image size (the demos and the node make it configurable)."""
        cam = self.camera
        camera = CameraConfig(width, height, cam.fov_deg, cam.eye, cam.target, cam.near, cam.far)
        return SimConfig(
            self.physics_hz,
            self.tick_s,
            self.cmd_timeout_s,
            self.gravity_compensation,
            self.pid,
            camera,
            self.task,
        )


def sim_config_from_dict(data: Any) -> SimConfig:
    """Validate a parsed YAML mapping into a :class:`SimConfig` (errors name the key)."""
    top = _keys(
        "sim config",
        data,
        ("physics_hz", "tick_s", "cmd_timeout_s", "gravity_compensation", "pid", "camera", "task"),
    )
    if not isinstance(top["gravity_compensation"], bool):
        raise SimConfigError(
            f"gravity_compensation must be true or false, got {top['gravity_compensation']!r}"
        )
    pid_raw = top["pid"]
    if not isinstance(pid_raw, dict):
        raise SimConfigError(f"pid must be a mapping joint -> gains, got {pid_raw!r}")
    pid = {}
    for name, gains in pid_raw.items():
        g = _keys(f"pid.{name}", gains, ("kp", "ki", "kd", "i_clamp"))
        pid[str(name)] = PidGains(**{k: _finite(f"pid.{name}.{k}", v) for k, v in g.items()})
    c = _keys("camera", top["camera"], ("width", "height", "fov_deg", "eye", "target", "near", "far"))
    camera = CameraConfig(
        width=c["width"],
        height=c["height"],
        fov_deg=_finite("camera.fov_deg", c["fov_deg"]),
        eye=_vector("camera.eye", c["eye"], 3),  # type: ignore[arg-type]
        target=_vector("camera.target", c["target"], 3),  # type: ignore[arg-type]
        near=_finite("camera.near", c["near"]),
        far=_finite("camera.far", c["far"]),
    )
    t = _keys("task", top["task"], tuple(TaskConfig.__dataclass_fields__))
    if not isinstance(t["colours"], list) or not all(isinstance(x, str) for x in t["colours"]):
        raise SimConfigError(f"task.colours must be a list of names, got {t['colours']!r}")
    task = TaskConfig(
        colours=tuple(t["colours"]),
        cube_size_m=_positive("task.cube_size_m", t["cube_size_m"]),
        cube_x_range_m=_vector("task.cube_x_range_m", t["cube_x_range_m"], 2),  # type: ignore[arg-type]
        cube_y_range_m=_vector("task.cube_y_range_m", t["cube_y_range_m"], 2),  # type: ignore[arg-type]
        min_cube_separation_m=_positive("task.min_cube_separation_m", t["min_cube_separation_m"]),
        success_distance_m=_positive("task.success_distance_m", t["success_distance_m"]),
        approach_height_m=_finite("task.approach_height_m", t["approach_height_m"]),
        time_limit_s=_positive("task.time_limit_s", t["time_limit_s"]),
        home=_vector("task.home", t["home"], len(JOINT_NAMES)),
        home_jitter_rad=_finite("task.home_jitter_rad", t["home_jitter_rad"]),
    )
    return SimConfig(
        physics_hz=_positive("physics_hz", top["physics_hz"]),
        tick_s=_positive("tick_s", top["tick_s"]),
        cmd_timeout_s=_positive("cmd_timeout_s", top["cmd_timeout_s"]),
        gravity_compensation=top["gravity_compensation"],
        pid=pid,
        camera=camera,
        task=task,
    )


def default_sim_config_path() -> Path:
    """``config/sim/panda.yaml`` of the source tree, or of the colcon install's ``share/`` (no ROS import)."""
    here = Path(__file__).resolve().parent.parent
    candidates = [here.parent / "config" / "sim" / "panda.yaml"]
    if len(here.parents) >= 4:
        candidates.append(here.parents[3] / "share" / "cosmos_ros" / "config" / "sim" / "panda.yaml")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"config/sim/panda.yaml not found; searched {[str(p) for p in candidates]}")


def load_sim_config(path: str | Path | None = None) -> SimConfig:
    """Load and validate a sim config (default: the shipped ``config/sim/panda.yaml``)."""
    path = Path(path) if path is not None else default_sim_config_path()
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    try:
        return sim_config_from_dict(data)
    except SimConfigError as exc:
        raise SimConfigError(f"{path}: {exc}") from None
