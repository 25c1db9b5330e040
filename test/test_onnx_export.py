"""ONNX export of the fast path's denoiser step, run under onnxruntime on CPU, against torch (tiny model).

Bound (issue 6): relative L2 of the step's velocity output <= 1e-3, both with the text exactly filling the
bucket and with the text padded (which exercises the key mask that makes one engine serve many prompts).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers", reason="diffusers is needed to build the tiny Cosmos 3 pipeline")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported graph")
pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")

from diffusers import DiffusionPipeline  # noqa: E402

from cosmos_ros.runtime.fast import FastPolicyBackend, _StepBuffers, relative_l2  # noqa: E402
from cosmos_ros.runtime.onnx_export import (  # noqa: E402
    INPUT_NAMES,
    StepExportConfig,
    example_plan,
    export_step_onnx,
    step_inputs,
)
from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline  # noqa: E402

TOL = 1e-3


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    path = make_tiny_pipeline(tmp_path_factory.mktemp("tiny_cosmos3_onnx"), seed=0)
    return DiffusionPipeline.from_pretrained(str(path))


def _torch_velocity(backend, plan, step):
    layout = plan.layouts[0]
    bufs = _StepBuffers(layout)
    bufs.load(layout)
    with torch.no_grad():
        return backend._gen_step(plan.x0_state, plan.tembs[step : step + 1], layout, bufs).numpy()


@pytest.mark.parametrize("pad", [0, 37], ids=["bucket-exact", "bucket-padded"])
def test_onnx_step_matches_torch(pipe, tmp_path, pad):
    backend = FastPolicyBackend(pipe, use_cuda_graph=False, use_compile=False, cache_text=False)
    probe = example_plan(backend, StepExportConfig(image_height=240, image_width=320, chunk_size=8))
    und_len = probe.layouts[0].und_len
    config = StepExportConfig(image_height=240, image_width=320, chunk_size=8, text_bucket=und_len + pad)
    path = export_step_onnx(pipe, config, tmp_path / f"{config.tag()}.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(INPUT_NAMES)

    plan = example_plan(backend, config)
    for step in (0, 1):
        feeds = step_inputs(
            backend, plan.layouts[0], plan.x0_state, plan.tembs[step : step + 1], config.text_bucket
        )
        (onnx_v,) = session.run(None, {k: v.numpy() for k, v in feeds.items()})
        ref = _torch_velocity(backend, plan, step)
        assert onnx_v.shape == ref.shape
        assert np.abs(ref).max() > 0  # the comparison is not of two zero vectors
        err = relative_l2(onnx_v, ref)
        assert err < TOL, f"step {step}: ONNX vs torch relative L2 {err:.3e}"


def test_prompt_longer_than_bucket_is_rejected(pipe):
    backend = FastPolicyBackend(pipe, use_cuda_graph=False, use_compile=False, cache_text=False)
    plan = example_plan(backend, StepExportConfig(chunk_size=4))
    with pytest.raises(ValueError, match="text_bucket"):
        step_inputs(backend, plan.layouts[0], plan.x0_state, plan.tembs[:1], text_bucket=3)


@pytest.mark.parametrize(
    ("field", "value"),
    [("resolution_tier", 300), ("chunk_size", 6), ("text_bucket", 0), ("image_height", 1)],
)
def test_export_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        StepExportConfig(**{field: value})
