"""Model directory checks and load-time validation: clear errors naming the path and what is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("diffusers", reason="loading a Cosmos 3 pipeline needs diffusers")
pytest.importorskip("accelerate", reason="diffusers needs accelerate to load Cosmos3OmniTransformer")


from cosmos_ros.runtime.loader import (
    ModelLoadError,
    check_model_dir,
    load_pipeline,
    validate_pipeline,
)


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model that a test may damage."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def test_load_valid_model(tiny_model_dir: Path) -> None:
    from diffusers import Cosmos3OmniPipeline

    pipe = load_pipeline(tiny_model_dir, "cpu", "float32", required_width=10)
    assert isinstance(pipe, Cosmos3OmniPipeline)
    assert pipe.transformer.config.action_gen and pipe.transformer.config.action_dim >= 10
    assert pipe.config.enable_safety_checker is False


def test_load_in_bfloat16(tiny_model_dir: Path) -> None:
    import torch

    pipe = load_pipeline(tiny_model_dir, "cpu", "bfloat16")
    assert pipe.transformer.dtype == torch.bfloat16


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=f"model directory does not exist: {tmp_path / 'nope'}"):
        load_pipeline(tmp_path / "nope")


def test_path_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_text("x")
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_pipeline(f)


def test_missing_model_index(model_copy: Path) -> None:
    (model_copy / "model_index.json").unlink()
    with pytest.raises(ModelLoadError, match=f"{model_copy} has no model_index.json"):
        load_pipeline(model_copy)


def test_corrupt_model_index(model_copy: Path) -> None:
    (model_copy / "model_index.json").write_text('{"_class_name": "Cosmos3OmniPipeline", ')
    with pytest.raises(ModelLoadError, match=r"corrupt JSON in .*model_index.json"):
        load_pipeline(model_copy)


def test_wrong_pipeline_class(model_copy: Path) -> None:
    index = json.loads((model_copy / "model_index.json").read_text())
    index["_class_name"] = "WanPipeline"
    (model_copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="_class_name is 'WanPipeline', expected 'Cosmos3OmniPipeline'"):
        load_pipeline(model_copy)


@pytest.mark.parametrize("component", ["transformer", "vae", "text_tokenizer", "scheduler"])
def test_missing_component_dir(model_copy: Path, component: str) -> None:
    shutil.rmtree(model_copy / component)
    with pytest.raises(ModelLoadError, match=rf"missing component directory .*{component}/"):
        load_pipeline(model_copy)


def test_component_without_weights(model_copy: Path) -> None:
    for f in (model_copy / "vae").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelLoadError, match=r"vae/ has config.json but no weights"):
        load_pipeline(model_copy)


def test_corrupt_component_config(model_copy: Path) -> None:
    (model_copy / "transformer" / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"corrupt JSON in .*transformer/config.json"):
        load_pipeline(model_copy)


def test_corrupt_weights_fail_at_load_naming_the_path(model_copy: Path) -> None:
    for f in (model_copy / "transformer").glob("*.safetensors"):
        f.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match=f"loading pipeline from {model_copy} failed"):
        load_pipeline(model_copy)


def test_guardrail_requested_without_its_package_is_an_import_error(tiny_model_dir: Path) -> None:
    try:
        import cosmos_guardrail  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip(reason="cosmos_guardrail is installed here, so enabling it cannot fail")
    with pytest.raises(ImportError, match="cosmos_guardrail"):
        load_pipeline(tiny_model_dir, enable_safety_checker=True)


def test_check_model_dir_returns_the_index(tiny_model_dir: Path) -> None:
    index = check_model_dir(tiny_model_dir)
    assert index["transformer"] == ["diffusers", "Cosmos3OmniTransformer"]


def test_model_without_action_support_is_rejected(tiny_model_no_action_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="has no action generation"):
        load_pipeline(tiny_model_no_action_dir)


def test_validate_rejects_loaded_pipeline_without_actions(tiny_model_no_action_dir: Path) -> None:
    # Independently of the pre-load config check: the post-load check looks at the loaded transformer.
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(tiny_model_no_action_dir), local_files_only=True)
    with pytest.raises(ModelLoadError, match="has no action generation"):
        validate_pipeline(pipe, 10)


def test_action_dim_narrower_than_domain_is_rejected(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="action_dim=32 is narrower than the action domain's raw width"):
        load_pipeline(tiny_model_dir, required_width=57)


@pytest.mark.parametrize(
    ("device", "dtype", "match"),
    [
        ("tpu", "float32", "device must be"),
        ("cpu", "float64", "dtype must be one of"),
        ("cpu", "fp16", "dtype must be one of"),
    ],
)
def test_bad_device_or_dtype(tiny_model_dir: Path, device: str, dtype: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_pipeline(tiny_model_dir, device, dtype)


def test_cuda_without_gpu_fails_at_load(tiny_model_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip(reason="a GPU is present, so requesting cuda is valid here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_pipeline(tiny_model_dir, "cuda")
