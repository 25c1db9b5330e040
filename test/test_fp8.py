"""FP8 path (``cosmos_ros.runtime.fp8``): path selection, the refusal on devices without FP8 tensor cores, and
the quantisation arithmetic on CPU (``torch._scaled_mm`` has a CPU implementation; the FP8 tensor cores and
the speed are measured on the GPU machine by ``bench_fast``, not here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers", reason="diffusers is needed to build the tiny Cosmos 3 pipeline")

from diffusers import DiffusionPipeline

from cosmos_ros.runtime import fp8
from cosmos_ros.runtime.backend import PolicyRequest
from cosmos_ros.runtime.fast import FastPolicyBackend, make_fast_backend, relative_l2
from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    p = DiffusionPipeline.from_pretrained(
        str(make_tiny_pipeline(tmp_path_factory.mktemp("tiny_fp8"), seed=0))
    )
    p.set_progress_bar_config(disable=True)
    return p


def _request() -> PolicyRequest:
    img = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    return PolicyRequest(
        image=img,
        prompt="pick up the cube",
        domain_name="bridge_orig_lerobot",
        chunk_size=8,
        num_inference_steps=3,
        guidance_scale=3.0,
    )


def test_cpu_is_refused_with_a_clear_message(pipe):
    reason = fp8.fp8_unsupported_reason("cpu")
    assert reason is not None and "8.9" in reason
    with pytest.raises(fp8.Fp8UnsupportedError, match="precision fp8: device cpu has no FP8 tensor cores"):
        make_fast_backend(pipe, precision="fp8")
    with pytest.raises(fp8.Fp8UnsupportedError):
        fp8.apply_fp8(FastPolicyBackend(pipe))


def test_default_precision_is_bf16_path_and_unknown_precision_is_an_error(pipe):
    be = make_fast_backend(pipe)
    assert be._layer_fn is not None and all(isinstance(w[1], torch.Tensor) for w in be._layer_weights)
    with pytest.raises(ValueError, match="precision must be one of"):
        make_fast_backend(pipe, precision="int4")


@pytest.mark.parametrize(
    ("capability", "name", "supported"),
    [
        ((8, 7), "Orin", False),
        ((8, 6), "NVIDIA A10", False),
        ((8, 9), "NVIDIA L4", True),
        ((9, 0), "H200", True),
        ((11, 0), "NVIDIA Thor", True),
    ],
)
def test_path_selection_by_compute_capability(monkeypatch, capability, name, supported):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _d=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _d=None: name)
    reason = fp8.fp8_unsupported_reason(torch.device("cuda"))
    assert (reason is None) == supported
    if not supported:
        assert name in reason and f"{capability[0]}.{capability[1]}" in reason


def test_weight_quantisation_is_per_channel_and_within_e4m3_precision():
    w = torch.randn(64, 96) * torch.logspace(-3, 2, 64).unsqueeze(1)  # rows of very different scales
    w8, scale = fp8.quantize_weight(w)
    assert w8.dtype == torch.float8_e4m3fn and scale.shape == (1, 64)
    wd = w8.float() * scale.reshape(-1, 1)
    # every row's largest element maps to e4m3's largest value; relative error of e4m3 (3 mantissa bits)
    assert torch.allclose(w8.float().abs().amax(dim=1), torch.full((64,), fp8.E4M3_MAX))
    assert relative_l2(wd, w) < 0.05
    per_row = ((wd - w).norm(dim=1) / w.norm(dim=1)).max()
    assert per_row < 0.05  # per-channel scales: small rows are as accurate as large ones


def test_scaled_mm_with_row_scales_matches_the_dequantised_reference():
    """The GPU path's product (``_scaled_mm``, row-wise scales) against the emulation CPU code uses."""
    torch.manual_seed(0)
    x = torch.randn(40, 96)
    w = torch.randn(48, 96)
    b = torch.randn(48)
    q = fp8.quantize_weight(w)
    x8, xs = fp8.quantize_rows(x)
    try:
        got = torch._scaled_mm(x8, q[0].t(), scale_a=xs, scale_b=q[1], out_dtype=torch.float32) + b
    except RuntimeError as exc:  # e.g. torch 2.11's CPU build: per-tensor scales only
        pytest.skip(f"this CPU build of torch has no row-wise _scaled_mm: {exc}"[:200])
    ref = fp8.dequantize_linear(x, q, b)
    assert relative_l2(got, ref) < 1e-5
    assert 1e-4 < relative_l2(ref, torch.nn.functional.linear(x, w, b)) < 0.1
    assert torch.equal(fp8.fp8_linear(x, w, b), torch.nn.functional.linear(x, w, b))  # plain weights pass


def test_apply_fp8_on_the_tiny_model(pipe):
    req = _request()
    ref = FastPolicyBackend(pipe).run(req).actions
    be = FastPolicyBackend(pipe)
    info = fp8.apply_fp8(be, check_device=False)  # CPU: arithmetic only
    assert info["fp8_layers"] == len(be._layer_weights) and info["bf16_layers"] == []
    got = be.run(req).actions
    assert 1e-4 < relative_l2(got, ref) < 0.2
    keep_all = FastPolicyBackend(pipe)
    fp8.apply_fp8(keep_all, bf16_layers=range(len(keep_all._layer_weights)), check_device=False)
    assert relative_l2(keep_all.run(req).actions, ref) < 1e-6
    with pytest.raises(ValueError, match="bf16_layers"):
        fp8.apply_fp8(FastPolicyBackend(pipe), bf16_layers=[99], check_device=False)
