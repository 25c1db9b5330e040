"""Planner node pieces that need no ROS graph: parameter validation, params file, image converter choice."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cosmos_ros.images import ImageError
from cosmos_ros.nodes.planner_node import (
    PARAMETERS,
    PlannerConfig,
    config_from_parameters,
    make_image_converter,
)
from cosmos_ros.parameter_schema import generated_params_file

pytestmark = pytest.mark.ros  # imports rclpy and the node module

REPO = Path(__file__).resolve().parent.parent
UNSET_BY_DEFAULT = {"fps", "frame_id"}  # declared without a default: "not set" means "from the profile"


def defaults(**override: Any) -> dict[str, Any]:
    """Parameter values as the node sees them with only model_path given (unset ones are None)."""
    vals = {k: (None if k in UNSET_BY_DEFAULT else v[0]) for k, v in PARAMETERS.items()}
    vals["model_path"] = "/models/cosmos3"
    vals.update(override)
    return vals


def build(**override: Any) -> PlannerConfig:
    vals = defaults(**override)
    return config_from_parameters(vals.__getitem__)


def test_defaults_build_a_valid_config() -> None:
    cfg = build()
    assert cfg.camera_topics == ("image_raw",) and cfg.compressed == (False,)
    assert cfg.options.view_point == "ego_view" and cfg.options.fps is None and cfg.frame_id is None
    assert cfg.used_cameras == ("image_raw",) and not cfg.tiles_views


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"model_path": ""}, "model_path must name"),
        ({"device": "gpu"}, "device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
        ({"dtype": "int8"}, "dtype must be one of"),
        ({"backend": "onnx"}, "backend must be one of .* got 'onnx'"),
        ({"chunk_size": 6}, "chunk_size must be a multiple of 4, got 6"),
        ({"resolution_tier": 300}, "resolution_tier must be one of"),
        ({"camera_topics": []}, "camera_topics must list one or more"),
        ({"camera_topics": ["a", "a"]}, "camera_topics must be unique"),
        (
            {"camera_topics": ["a", "b"], "compressed": [True]},
            "compressed must be one bool or one per camera",
        ),
        ({"compressed": "yes"}, "compressed must be a bool or an array of them, got 'yes'"),
        ({"camera_combine": "mosaic"}, "camera_combine must be one of"),
        ({"camera_combine": "select", "selected_camera": "other"}, "selected_camera must be one of"),
        ({"camera_topics": ["a", "b"], "view_point": "wrist_view"}, "view_point must be 'concat_view'"),
        ({"max_plan_rate_hz": 0.0}, r"max_plan_rate_hz must be in \[0.01, 100.0\], got 0.0"),
        ({"max_plan_rate_hz": float("nan")}, "max_plan_rate_hz must be a finite number, got nan"),
        ({"stamp_tolerance_s": -1.0}, r"stamp_tolerance_s must be in \[0.0, 10.0\], got -1.0"),
        ({"max_goal_length": 0}, r"max_goal_length must be in \[1, 1048576\], got 0"),
        ({"max_goal_length": 2.5}, "max_goal_length must be an integer, got 2.5"),
        ({"frame_id": ""}, "frame_id must be non-empty when set"),
        ({"fps": -5.0}, r"fps must be in \[0.1, 1000.0\], got -5.0"),
        ({"precision": "int4"}, r"precision must be one of \['bf16', 'fp8'\], got 'int4'"),
        ({"precision": "fp8"}, r"precision 'fp8' needs backend one of \['fast'\], got 'diffusers'"),
        ({"precision": "fp8", "backend": "fast"}, "precision 'fp8' needs a CUDA GPU .* got device 'cpu'"),
        (
            {"precision": "fp8", "backend": "server", "server_address": "unix:///s", "device": "cuda"},
            "needs backend one of .* got 'server' \\(the policy server's own precision applies\\)",
        ),
    ],
)
def test_invalid_parameters_name_the_field_and_value(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(**override)


def test_view_point_auto_and_camera_modes() -> None:
    tiled = build(camera_topics=["left", "right"], compressed=[False, True])
    assert tiled.tiles_views and tiled.options.view_point == "concat_view"
    assert tiled.compressed == (False, True) and tiled.tile_mode.mode == "horizontal"
    sel = build(camera_topics=["left", "right"], camera_combine="select", selected_camera="right")
    assert not sel.tiles_views and sel.options.view_point == "ego_view"
    assert (
        sel.used_cameras == ("right",) and sel.tile_mode.mode == "select" and sel.tile_mode.camera == "right"
    )
    wrist = build(view_point="wrist_view")
    assert wrist.options.view_point == "wrist_view"
    assert build(compressed=True, camera_topics=["a", "b"]).compressed == (True, True)
    assert build(fps=10.0, frame_id="world").options.fps == 10.0


def test_precision_is_bf16_by_default_and_passed_only_to_backends_that_take_it() -> None:
    assert build().precision == "bf16"
    assert build().factory_options() == {}  # diffusers takes no precision (the model's own dtype)
    assert build(backend="fast").factory_options() == {"precision": "bf16"}
    fp8 = build(
        backend="fast", device="cuda:0", precision="fp8"
    )  # configure decides; the device is asked then
    assert fp8.factory_options() == {"precision": "fp8"}
    server = build(backend="server", server_address="unix:///tmp/s.sock")
    assert server.factory_options() == {}  # the server runs its own precision


def test_descriptors_carry_the_schema() -> None:
    """What `ros2 param describe` shows comes from the schema: ranges, choices from the registries."""
    from cosmos_ros.runtime.policy import BACKENDS, PRECISIONS

    _, backend = PARAMETERS["backend"]
    assert backend.additional_constraints == "one of: " + ", ".join(BACKENDS)
    assert PARAMETERS["precision"][0] == "bf16"
    assert PARAMETERS["precision"][1].additional_constraints == "one of: " + ", ".join(PRECISIONS)
    chunk = PARAMETERS["chunk_size"][1].integer_range[0]
    assert (chunk.from_value, chunk.to_value, chunk.step) == (4, 512, 4)
    rate = PARAMETERS["max_plan_rate_hz"][1].floating_point_range[0]
    assert (rate.from_value, rate.to_value) == (0.01, 100.0)
    assert PARAMETERS["autostart"][1].read_only and PARAMETERS["compressed"][1].dynamic_typing


def test_params_file_is_the_one_generated_from_the_schema() -> None:
    """config/planner.yaml is derived from schemas/planner_node.yaml; editing one without the other fails."""
    committed = (REPO / "config" / "planner.yaml").read_text()
    assert committed == generated_params_file("config/planner.yaml"), (
        "config/planner.yaml differs from its schema; run: python -m cosmos_ros.parameter_schema --write"
    )


def test_params_file_matches_declared_parameters() -> None:
    """config/planner.yaml carries every declared parameter (but the unset-by-default ones), same default."""
    data = yaml.safe_load((REPO / "config" / "planner.yaml").read_text())
    params = data["/**"]["ros__parameters"]
    declared = {k: v[0] for k, v in PARAMETERS.items() if k not in UNSET_BY_DEFAULT}
    assert set(params) == set(declared)
    for name, default in declared.items():
        assert params[name] == default, name
    for name, (_, desc) in PARAMETERS.items():
        assert desc.description, f"{name} has no description"
    # The file's values (model_path filled in) form a valid configuration.
    vals = dict(params, model_path="/models/x", fps=None, frame_id=None)
    config_from_parameters(vals.__getitem__)


# ---- image converters ------------------------------------------------------------------------------------
def _msg(encoding: str, h: int = 4, w: int = 5, bpp: int = 3) -> types.SimpleNamespace:
    data = np.arange(h * w * bpp, dtype=np.uint8).tobytes()
    return types.SimpleNamespace(
        height=h, width=w, encoding=encoding, step=w * bpp, is_bigendian=0, data=data
    )


class FakeBridge:
    """Records calls; converts a 16-bit mosaic by taking the high byte (enough to see which path ran)."""

    calls: list[str] = []  # noqa: RUF012 - shared on purpose, reset per test

    def imgmsg_to_cv2(self, msg: Any, desired_encoding: str) -> np.ndarray:
        FakeBridge.calls.append(msg.encoding)
        if msg.encoding != "bayer_rggb16":
            raise TypeError(f"cannot convert {msg.encoding}")
        gray = np.frombuffer(msg.data, dtype=np.uint16).reshape(msg.height, msg.width) >> 8
        return np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2)


FAKE_CV_BRIDGE = types.SimpleNamespace(CvBridge=FakeBridge)


def test_without_cv_bridge_the_package_converter_is_used() -> None:
    conv, how = make_image_converter(1000, compressed=False, cv_bridge_module=None)
    if "cv_bridge" in how:
        pytest.skip(reason="cv_bridge is installed here; this test covers machines without it")
    out = conv(_msg("bgr8"))
    assert out.shape == (4, 5, 3) and out[0, 0].tolist() == [2, 1, 0]
    with pytest.raises(ImageError) as exc:
        conv(_msg("bayer_rggb16", bpp=2))
    assert exc.value.reason == "encoding"


def test_cv_bridge_only_converts_what_the_package_converter_refuses() -> None:
    FakeBridge.calls = []
    conv, how = make_image_converter(1000, compressed=False, cv_bridge_module=FAKE_CV_BRIDGE)
    assert "cv_bridge" in how
    assert conv(_msg("rgb8"))[0, 0].tolist() == [0, 1, 2]
    assert FakeBridge.calls == []  # supported encodings never reach cv_bridge
    m16 = _msg("bayer_rggb16", bpp=2)  # 16-bit mosaics: cv_bridge converts them, the package does not
    m16.data = (np.full(20, 0x1234, dtype=np.uint16)).tobytes()
    assert conv(m16)[0, 0].tolist() == [0x12, 0x12, 0x12] and FakeBridge.calls == ["bayer_rggb16"]
    # cv_bridge failures are rejections with a reason, never exceptions of another type.
    with pytest.raises(ImageError) as exc:
        conv(_msg("32FC1", bpp=4))
    assert exc.value.reason == "encoding" and "cv_bridge cannot convert" in str(exc.value)
    # The pixel limit applies before cv_bridge runs; step/size checks stay the package's.
    with pytest.raises(ImageError) as exc:
        conv(_msg("bayer_rggb16", h=40, w=40, bpp=2))
    assert exc.value.reason == "too_large" and FakeBridge.calls == ["bayer_rggb16", "32FC1"]
    bad = _msg("rgb8")
    bad.step = 3
    with pytest.raises(ImageError) as exc:
        conv(bad)
    assert exc.value.reason == "step"


def test_compressed_converter_decodes_png() -> None:
    from cosmos_ros.images import rgb_to_compressed

    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    fmt, data = rgb_to_compressed(rgb, "png")
    conv, how = make_image_converter(1000, compressed=True)
    assert "compressed" in how
    np.testing.assert_array_equal(conv(types.SimpleNamespace(format=fmt, data=data)), rgb)
