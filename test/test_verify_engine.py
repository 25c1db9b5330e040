"""``verify_engine``'s paths that run without TensorRT (the ONNX half and the exit codes), on the tiny model.
The engine half needs TensorRT and a GPU: not on this project's machines (the output says so when it runs)."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers", reason="diffusers is needed to build the tiny Cosmos 3 pipeline")
pytest.importorskip("onnxruntime", reason="verify_engine compares onnxruntime with torch")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline

    return str(make_tiny_pipeline(tmp_path_factory.mktemp("tiny_verify"), seed=0))


ARGS = [
    "--chunk",
    "8",
    "--image-size",
    "240x320",
    "--text-bucket",
    "512",
]  # the tiny tokenizer is long-winded


def test_onnx_half_passes_and_says_tensorrt_was_not_checked(model_dir, capsys):
    from cosmos_ros.tools import verify_engine

    assert verify_engine.main(["--model", model_dir, *ARGS, "--allow-no-tensorrt"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime (CPU) vs torch fp32" in out and "ok" in out
    assert "the engine was NOT built or checked" in out
    # Without --allow-no-tensorrt a missing TensorRT is not a pass.
    assert verify_engine.main(["--model", model_dir, *ARGS]) == 2


def test_disagreement_beyond_tolerance_exits_1(model_dir, capsys):
    from cosmos_ros.tools import verify_engine

    assert (
        verify_engine.main(["--model", model_dir, *ARGS, "--ort-tolerance", "0", "--allow-no-tensorrt"]) == 1
    )
    assert "DISAGREES" in capsys.readouterr().out
