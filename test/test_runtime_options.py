"""Policy options and backend registry: rejected at configuration time with messages naming the option."""

from __future__ import annotations

import numpy as np
import pytest

from cosmos_ros.runtime.options import PolicyOptions
from cosmos_ros.runtime.policy import BACKENDS, get_backend_factory


def test_defaults_are_valid_and_build_a_request() -> None:
    opts = PolicyOptions()
    req = opts.request(np.zeros((8, 8, 3), np.uint8), "go", "umi", default_fps=10.0)
    assert req.fps == 10.0  # fps None -> the profile's action rate
    assert req.chunk_size == 16 and req.seed == 0
    assert PolicyOptions(fps=30.0).request(np.zeros((8, 8, 3), np.uint8), "go", "umi", 10.0).fps == 30.0
    assert opts.request(np.zeros((8, 8, 3), np.uint8), "go", "umi", 10.0, seed=7).seed == 7


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chunk_size": 6}, "chunk_size must be a positive multiple of 4.*got 6"),
        ({"chunk_size": 0}, "chunk_size must be a positive multiple of 4"),
        ({"chunk_size": -4}, "chunk_size must be a positive multiple of 4"),
        ({"chunk_size": 8.0}, "chunk_size must be a positive multiple of 4"),
        ({"resolution_tier": 300}, r"resolution_tier must be one of \(256, 480, 704, 720\), got 300"),
        ({"num_inference_steps": 0}, "num_inference_steps must be an int >= 1, got 0"),
        ({"num_inference_steps": True}, "num_inference_steps must be an int"),
        ({"guidance_scale": 0.5}, "guidance_scale must be a finite number >= 1.0, got 0.5"),
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"view_point": "top_view"}, "view_point must be one of"),
        ({"fps": 0.0}, "fps must be a finite number > 0"),
        ({"fps": float("inf")}, "fps must be a finite number > 0"),
        ({"seed": -1}, r"seed must be an int in \[0, 2\*\*63\), got -1"),
        ({"seed": 1.5}, "seed must be an int"),
        ({"decode_video": "yes"}, "decode_video must be a bool"),
    ],
)
def test_bad_options_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PolicyOptions(**kwargs)


def test_from_mapping_rejects_unknown_keys_listing_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown policy options \['steps'\].*num_inference_steps"):
        PolicyOptions.from_mapping({"steps": 4})
    assert PolicyOptions.from_mapping({"num_inference_steps": 4}).num_inference_steps == 4


def test_unknown_backend_lists_valid_names() -> None:
    valid = r"\['diffusers', 'fast', 'server', 'tensorrt'\]"
    with pytest.raises(ValueError, match=rf"unknown backend 'onnx'; valid: {valid}"):
        get_backend_factory("onnx")


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        BACKENDS["mine"] = BACKENDS["diffusers"]  # type: ignore[index]


def test_diffusers_backend_factory_imports() -> None:
    pytest.importorskip("diffusers", reason="the diffusers backend needs diffusers")
    factory = get_backend_factory("diffusers")
    assert callable(factory)
    with pytest.raises(ValueError, match=r"unknown diffusers backend options \['turbo'\]"):
        factory(object(), turbo=True)


def test_missing_optional_backend_raises_import_error_with_hint() -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip(reason="tensorrt is installed here, so its backend import cannot fail")
    with pytest.raises(
        ImportError, match=r"backend 'tensorrt' is unavailable.*to use it: pip install tensorrt"
    ):
        get_backend_factory("tensorrt")
