"""Limits files: the shipped examples load, and broken files are refused with a message naming the key."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

from cosmos_ros.safety import POSE_AXES, AxisLimits, LimitsError, SafetyLimits, limits_from_dict, load_limits

CONFIG = Path(__file__).resolve().parents[1] / "config" / "limits"


def _arm() -> dict:
    return yaml.safe_load((CONFIG / "arm7_joints.yaml").read_text())


def _pose() -> dict:
    return yaml.safe_load((CONFIG / "umi_pose_gripper.yaml").read_text())


def test_arm7_example_loads_with_datasheet_values() -> None:
    limits = load_limits(CONFIG / "arm7_joints.yaml")
    assert limits.kind == "joint"
    assert limits.axis_names == (*(f"panda_joint{i}" for i in range(1, 8)), "gripper")
    j4 = limits.axis("panda_joint4")
    assert (j4.min_position, j4.max_position, j4.max_velocity) == (-3.0718, -0.0698, 2.175)
    assert limits.axis("gripper").max_jerk is None  # explicit "no limit", not 0
    assert "panda_joint1: position [-2.8973, 2.8973] rad, velocity 2.175 rad/s" in str(limits)


def test_pose_example_loads_with_orientation() -> None:
    limits = load_limits(CONFIG / "umi_pose_gripper.yaml")
    assert limits.kind == "pose"
    assert limits.axis_names == POSE_AXES
    assert limits.orientation is not None
    assert limits.orientation.max_angular_velocity_rad_s == 1.5
    assert limits.orientation.cone_reference_xyzw == (1.0, 0.0, 0.0, 0.0)
    assert "cone 1.2 rad" in str(limits)


def _mutated(base: dict, path: tuple, value: object = None, delete: bool = False) -> dict:
    data = copy.deepcopy(base)
    node = data
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "delete", "expected"),
    [
        (("frame_id",), None, True, "frame_id: missing required key"),
        (("staleness_limit_s",), None, True, "staleness_limit_s: missing required key"),
        (("axes", 0, "max_jerk"), None, True, "axes.panda_joint1.max_jerk: missing required key"),
        (("axes", 1, "max_velocity"), -1.0, False, "axes.panda_joint2.max_velocity must be > 0"),
        (("axes", 1, "max_velocity"), 0.0, False, "axes.panda_joint2.max_velocity must be > 0"),
        (
            ("axes", 2, "max_acceleration"),
            float("nan"),
            False,
            "axes.panda_joint3.max_acceleration must be finite",
        ),
        (("axes", 3, "min_position"), 1.0, False, "axes.panda_joint4: min_position (1.0) > max_position"),
        (("axes", 0, "max_velocity"), "fast", False, "axes.panda_joint1.max_velocity must be a number"),
        (("axes", 0, "max_velocty"), 1.0, False, "axes.panda_joint1.max_velocty: unknown key"),
        (("control_rate_hz",), -100.0, False, "control_rate_hz must be a number > 0"),
        (("staleness_limit_s",), 0, False, "staleness_limit_s must be a number > 0"),
        (("kind",), "cartesian", False, "kind must be one of"),
        (("extra",), 1, False, "extra: unknown key"),
        (("axes", 1, "name"), "panda_joint1", False, "duplicate axis names ['panda_joint1']"),
        (("axes", 1, "name"), "qx", False, "'qx' is a quaternion column"),
    ],
)
def test_arm_file_errors_name_the_key(path: tuple, value: object, delete: bool, expected: str) -> None:
    with pytest.raises(LimitsError, match=None) as info:
        limits_from_dict(_mutated(_arm(), path, value, delete))
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("path", "value", "delete", "expected"),
    [
        (("axes", 0, "name"), "roll", False, "axes: unknown axis 'roll' for kind pose"),
        (("axes",), [], False, "axes must list at least one axis"),
        (("orientation", "cone", "max_angle_rad"), None, True, "orientation.cone.max_angle_rad: missing"),
        (("orientation", "cone", "reference_xyzw"), [0, 0, 0, 0.5], False, "must be a unit quaternion"),
        (("orientation", "cone", "max_angle_rad"), 4.0, False, "max_angle_rad must be in (0, pi]"),
        (
            ("orientation", "max_angular_velocity_rad_s"),
            -1.0,
            False,
            "max_angular_velocity_rad_s must be > 0",
        ),
        (("orientation", "spin"), 1.0, False, "orientation.spin: unknown key"),
    ],
)
def test_pose_file_errors_name_the_key(path: tuple, value: object, delete: bool, expected: str) -> None:
    with pytest.raises(LimitsError) as info:
        limits_from_dict(_mutated(_pose(), path, value, delete))
    assert expected in str(info.value)


def test_pose_missing_linear_axis_is_named() -> None:
    data = _pose()
    data["axes"] = [a for a in data["axes"] if a["name"] != "z"]
    with pytest.raises(LimitsError, match="missing axis 'z'"):
        limits_from_dict(data)


def test_orientation_on_joint_space_is_refused() -> None:
    data = _arm()
    data["orientation"] = {"max_angular_velocity_rad_s": 1.0}
    with pytest.raises(LimitsError, match="orientation is only valid for kind pose"):
        limits_from_dict(data)


def test_load_limits_prefixes_the_file_and_rejects_bad_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("axes: [unclosed\n")
    with pytest.raises(LimitsError, match="not valid YAML"):
        load_limits(bad)
    incomplete = tmp_path / "incomplete.yaml"
    data = _arm()
    del data["action_space"]
    incomplete.write_text(yaml.safe_dump(data))
    with pytest.raises(LimitsError, match=r"incomplete\.yaml: action_space: missing required key"):
        load_limits(incomplete)


def test_axis_limits_dataclass_validates_and_prints_none_as_unlimited() -> None:
    axis = AxisLimits("j", "rad", -1.0, 1.0, None, 2.0, None, None)
    text = str(axis)
    assert "velocity unlimited" in text and "acceleration 2 rad/s^2" in text
    with pytest.raises(LimitsError, match=r"axes\.j\.max_jerk must be finite"):
        AxisLimits("j", "rad", max_jerk=math.inf)
    with pytest.raises(LimitsError, match="frame_id must be a non-empty string"):
        SafetyLimits("a", "joint", "", 0.5, 100.0, (axis,))
