"""TensorRT path: engine cache naming and the missing-TensorRT errors run everywhere; building and running an
engine runs only where ``tensorrt`` imports and a CUDA device exists (never on this project's CI machines,
which have neither: those tests skip and say so)."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import numpy as np
import pytest

from cosmos_ros.runtime.onnx_export import StepExportConfig, engine_cache_path

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


needs_trt_gpu = pytest.mark.skipif(
    not (HAVE_TRT and _cuda()), reason="needs the tensorrt Python package and a CUDA GPU (absent here)"
)


def test_engine_cache_path_names_configuration_precision_device_and_version(tmp_path):
    cfg = StepExportConfig(
        resolution_tier=480, image_height=480, image_width=640, chunk_size=16, text_bucket=192
    )
    p = engine_cache_path(tmp_path, cfg, "bf16", "NVIDIA Jetson AGX Thor", "10.13.0.35", source="abc")
    assert p.parent == tmp_path
    assert p.name.startswith(
        "cosmos3_step_tier480_480x640_chunk16_text192_bf16_NVIDIA_Jetson_AGX_Thor_trt10.13.0.35_"
    )
    assert p.suffix == ".engine" and len(p.stem.rsplit("_", 1)[1]) == 16
    other = engine_cache_path(tmp_path, cfg, "bf16", "NVIDIA H100 80GB HBM3", "10.13.0.35")
    assert other != p
    with pytest.raises(ValueError, match="precision"):
        engine_cache_path(tmp_path, cfg, "int3", "x", "1")


def test_backend_module_without_tensorrt_raises_import_error_with_hint(monkeypatch):
    monkeypatch.setitem(
        sys.modules, "tensorrt", None
    )  # makes `import tensorrt` fail, as on a machine without it
    monkeypatch.delitem(sys.modules, "cosmos_ros.runtime.tensorrt_backend", raising=False)
    with pytest.raises(ImportError, match="pip install tensorrt"):
        importlib.import_module("cosmos_ros.runtime.tensorrt_backend")


def test_export_tool_without_tensorrt_exits_2_with_hint(monkeypatch, capsys):
    from cosmos_ros.tools import export_engine

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert export_engine.main(["--model", "/nonexistent", "--precision", "bf16"]) == 2
    assert "pip install tensorrt" in capsys.readouterr().err


def test_export_tool_rejects_bad_configuration(capsys):
    from cosmos_ros.tools import export_engine

    assert export_engine.main(["--model", "/x", "--chunk", "6"]) == 2
    assert "chunk_size" in capsys.readouterr().err


@needs_trt_gpu
def test_engine_step_matches_torch(tmp_path):
    """Build an fp16 engine of the tiny model's step and compare it with the torch step (relative L2)."""
    import torch
    from diffusers import DiffusionPipeline

    from cosmos_ros.runtime.fast import FastPolicyBackend, _StepBuffers, relative_l2
    from cosmos_ros.runtime.onnx_export import example_plan, export_step_onnx, step_inputs
    from cosmos_ros.runtime.tensorrt_backend import TensorRTStep
    from cosmos_ros.tools.export_engine import _import_tensorrt, build_engine
    from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline

    trt = _import_tensorrt()
    pipe = DiffusionPipeline.from_pretrained(str(make_tiny_pipeline(tmp_path / "tiny"))).to(
        "cuda", torch.float16
    )
    backend = FastPolicyBackend(pipe, use_cuda_graph=False, use_compile=False, cache_text=False)
    und = example_plan(backend, StepExportConfig(chunk_size=8)).layouts[0].und_len
    cfg = StepExportConfig(chunk_size=8, text_bucket=und + 8)
    onnx_path = export_step_onnx(pipe, cfg, tmp_path / "step.onnx")
    engine = tmp_path / "step.engine"
    build_engine(trt, onnx_path, engine, "fp16", 1.0)  # strongly typed from the fp16 ONNX
    step = TensorRTStep(engine, torch.device("cuda"))
    plan = example_plan(backend, cfg)
    layout = plan.layouts[0]
    feeds = step_inputs(backend, layout, plan.x0_state, plan.tembs[:1], cfg.text_bucket)
    got = step(feeds).cpu().numpy()
    bufs = _StepBuffers(layout)
    bufs.load(layout)
    with torch.no_grad():
        ref = backend._gen_step(plan.x0_state, plan.tembs[:1], layout, bufs).cpu().numpy()
    assert np.abs(ref).max() > 0
    assert relative_l2(got, ref) < 1e-2
