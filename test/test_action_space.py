"""Action-space profiles: loading, validation, de-normalisation and decoding to physical values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from cosmos_ros.action_space import (
    ActionBlock,
    ActionSpaceProfile,
    Normalization,
    UnknownProfileError,
    list_profiles,
    load_profile,
)
from cosmos_ros.rotation import DegenerateRotationError

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "config" / "action_spaces"
IDENTITY_6D = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def _pose_profile(semantics: str = "absolute", norm: Normalization | None = None) -> ActionSpaceProfile:
    return ActionSpaceProfile(
        name="test_pose",
        domain_name="umi",
        blocks=(
            ActionBlock("position", 3, ("x", "y", "z")),
            ActionBlock("rotation_6d", 6, ("qx", "qy", "qz", "qw")),
            ActionBlock("gripper", 1, ("gripper",)),
        ),
        normalization=norm or Normalization("none"),
        semantics=semantics,
    )


def test_shipped_profiles_are_listed() -> None:
    assert {"umi_pose_gripper", "arm7_joints"} <= set(list_profiles([SHIPPED]))


def test_umi_profile_layout() -> None:
    p = load_profile("umi_pose_gripper", [SHIPPED])
    assert p.domain_name == "umi"
    assert p.raw_width == 10
    assert p.axis_names == ("x", "y", "z", "qx", "qy", "qz", "qw", "gripper")
    assert p.stats_are_placeholder  # the shipped statistics must say they are placeholders
    assert p.step_period_s == pytest.approx(1 / p.action_rate_hz)


def test_arm7_profile_layout_matches_the_limits_joint_names() -> None:
    p = load_profile("arm7_joints", [SHIPPED])
    assert p.raw_width == 10
    assert p.axis_names == (*(f"panda_joint{i}" for i in range(1, 8)), "gripper")
    assert p.stats_are_placeholder
    limits = REPO / "config" / "limits" / "arm7_joints.yaml"
    text = limits.read_text()
    for name in p.axis_names:
        assert name in text, f"{name} missing from {limits}"


@pytest.mark.parametrize("name", ["umi_pose_gripper", "arm7_joints"])
def test_shipped_profile_width_matches_its_cosmos_domain(name: str) -> None:
    pytest.importorskip("diffusers", reason="the domain width table lives in diffusers' Cosmos 3 pipeline")
    from cosmos_ros.runtime.loader import domain_raw_width

    p = load_profile(name, [SHIPPED])
    assert p.raw_width == domain_raw_width(p.domain_name)


def test_umi_decode_known_values() -> None:
    p = load_profile("umi_pose_gripper", [SHIPPED])
    mean = np.array(yaml.safe_load((SHIPPED / "umi_pose_gripper.yaml").read_text())["normalization"]["mean"])
    std = np.array(yaml.safe_load((SHIPPED / "umi_pose_gripper.yaml").read_text())["normalization"]["std"])
    # Physical targets: position (0.5, -0.1, 0.3), identity rotation, gripper 0.02 -> invert the stats.
    target = np.array([0.5, -0.1, 0.3, *IDENTITY_6D, 0.02])
    raw = ((target - mean) / std)[None, :].repeat(2, axis=0)
    names, values = p.decode(raw)
    assert names == p.axis_names
    assert values.dtype == np.float64 and values.shape == (2, 8)
    np.testing.assert_allclose(values[0], [0.5, -0.1, 0.3, 0, 0, 0, 1, 0.02], atol=1e-12)


def test_arm7_min_max_maps_minus_one_zero_one_to_min_mid_max() -> None:
    p = load_profile("arm7_joints", [SHIPPED])
    data = yaml.safe_load((SHIPPED / "arm7_joints.yaml").read_text())["normalization"]
    lo, hi = np.array(data["min"]), np.array(data["max"])
    raw = np.stack([-np.ones(10), np.zeros(10), np.ones(10)])
    names, values = p.decode(raw)
    assert len(names) == 8 and values.shape == (3, 8)
    np.testing.assert_allclose(values[0], lo[:8])
    np.testing.assert_allclose(values[1], (lo[:8] + hi[:8]) / 2)
    np.testing.assert_allclose(values[2], hi[:8])


def test_unused_columns_do_not_leak_into_the_output() -> None:
    p = load_profile("arm7_joints", [SHIPPED])
    raw = np.zeros((1, 10))
    _, a = p.decode(raw)
    raw[:, 8:] = 0.9
    _, b = p.decode(raw)
    np.testing.assert_array_equal(a, b)


def test_decoded_quaternions_are_unit() -> None:
    p = load_profile("umi_pose_gripper", [SHIPPED])
    raw = np.random.default_rng(0).normal(size=(16, 10))
    _, v = p.decode(raw)
    np.testing.assert_allclose(np.linalg.norm(v[:, 3:7], axis=1), 1.0, atol=1e-12)
    assert np.all(v[:, 6] >= 0)


def test_delta_semantics_accumulate_from_the_reference() -> None:
    p = _pose_profile("delta")
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    z90_6d = [0.0, 1.0, 0.0, -1.0, 0.0, 0.0]  # columns of Rz(90°)
    raw = np.array(
        [
            [0.1, 0.0, 0.0, *z90_6d, 0.5],
            [0.0, 0.2, 0.0, *z90_6d, 0.7],
        ]
    )
    reference = [1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    _, v = p.decode(raw, reference)
    np.testing.assert_allclose(v[0, :3], [1.1, 2.0, 3.0])
    np.testing.assert_allclose(v[1, :3], [1.1, 2.2, 3.0])
    np.testing.assert_allclose(v[0, 3:7], [0, 0, s, c], atol=1e-12)  # 90° about z
    np.testing.assert_allclose(v[1, 3:7], [0, 0, 1, 0], atol=1e-12)  # composed: 180° about z
    np.testing.assert_allclose(v[:, 7], [0.5, 0.7])  # gripper stays absolute


def test_delta_needs_reference_and_absolute_refuses_one() -> None:
    raw = np.array([[0.0, 0.0, 0.0, *IDENTITY_6D, 0.0]])
    with pytest.raises(ValueError, match="needs a reference"):
        _pose_profile("delta").decode(raw)
    with pytest.raises(ValueError, match="reference must be"):
        _pose_profile("delta").decode(raw, [0.0] * 3)
    with pytest.raises(ValueError, match="absolute"):
        _pose_profile("absolute").decode(raw, [0.0] * 8)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (np.zeros((4, 9)), r"shape \[T>=1, 10\]"),
        (np.zeros((0, 10)), r"shape \[T>=1, 10\]"),
        (np.zeros(10), r"shape \[T>=1, 10\]"),
        (np.full((2, 10), np.nan), "NaN or Inf"),
    ],
)
def test_decode_rejects_bad_raw(raw: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _pose_profile().decode(raw)


def test_decode_raises_on_degenerate_rotation() -> None:
    raw = np.array([[0.0, 0.0, 0.0, 0, 0, 0, 0, 0, 0, 0.0]])
    with pytest.raises(DegenerateRotationError):
        _pose_profile().decode(raw)


def test_unknown_profile_lists_valid_names() -> None:
    with pytest.raises(UnknownProfileError) as err:
        load_profile("no_such_profile", [SHIPPED])
    assert "umi_pose_gripper" in str(err.value) and "arm7_joints" in str(err.value)


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _valid() -> dict:
    return yaml.safe_load((SHIPPED / "umi_pose_gripper.yaml").read_text())


def test_profile_from_explicit_path(tmp_path: Path) -> None:
    assert load_profile(_write(tmp_path, _valid())).name == "umi_pose_gripper"


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(typo_key=1), "unknown profile keys"),
        (lambda d: d.update(semantics="relative"), "semantics must be one of"),
        (lambda d: d.update(action_rate_hz=0), "action_rate_hz must be > 0, got 0"),
        (lambda d: d.update(action_delay_s=-0.1), "action_delay_s must be >= 0, got -0.1"),
        (lambda d: d.update(rotation_6d_layout="diag"), "rotation_6d_layout must be one of"),
        (lambda d: d["normalization"].update(mean=[0.0] * 9), "differ in length|raw_width=10"),
        (lambda d: d["normalization"]["std"].__setitem__(0, 0.0), "std must be > 0"),
        (lambda d: d["normalization"].update(kind="zscore"), "normalization kind must be one of"),
        (lambda d: d["blocks"].append({"kind": "gripper"}), "duplicated"),
        (lambda d: d["blocks"].__setitem__(0, {"kind": "position", "width": 2}), "position block width"),
        (lambda d: d["blocks"].__setitem__(0, {"kind": "wing"}), "block kind must be one of"),
    ],
)
def test_invalid_profiles_name_the_problem(tmp_path: Path, mutate, match: str) -> None:
    data = _valid()
    mutate(data)
    with pytest.raises(ValueError, match=match):
        load_profile(_write(tmp_path, data))


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("blocks: [unclosed")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        load_profile(path)
