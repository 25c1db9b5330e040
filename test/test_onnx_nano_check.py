"""onnx_nano_check (issue 15): the whole Nano-width check run end to end at the small width, FP8 included, so
every line of the report the GPU machine will write is produced here first; and the estimate that decides
whether 36 layers are attempted, checked on numbers where the answer is known."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("diffusers", reason="diffusers is needed to build the random-weight Cosmos 3 pipeline")
pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported graphs")
pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")

from cosmos_ros.tools.bench_fast import NANO
from cosmos_ros.tools.onnx_nano_check import DoesNotFitError, Measured, _preflight, fit_estimate, main

GIB = 2**30


def _measured(rss_peak_gib: float) -> Measured:
    # 2 layers of 100 M params (0.75 GiB fp32) over 0.5 B params of embeddings, from a 1 GiB start.
    return Measured(
        layers=2,
        params=700_000_000,
        layer_params=100_000_000,
        rss_start_gib=1.0,
        rss_fp32_gib=rss_peak_gib,
        seconds_fp32=10.0,
        rss_peak_gib=rss_peak_gib,
        seconds=20.0,
        step_bytes=GIB,
    )


def test_estimate_scales_the_per_layer_part_and_says_whether_it_fits():
    fixed = 1.0 + 500_000_000 * 4 / GIB  # start + non-layer weights: 2.86 GiB
    line = fit_estimate(_measured(fixed + 2 * 3.0), 36, 128.0)  # 3 GiB per layer -> 110.9 GiB
    assert "4.10 B params" in line and "fp32 step export 18.0 GiB" in line
    assert "peak RSS ~111 GiB (fits)" in line and "wall ~180s" in line and "wall ~360s" in line
    line = fit_estimate(_measured(fixed + 2 * 3.5), 36, 128.0)  # 128.9 GiB
    assert "peak RSS ~129 GiB (does NOT fit)" in line


def test_a_model_whose_weights_alone_exceed_ram_is_refused_with_the_numbers():
    _preflight(NANO, mem_total_gib=1e6)  # counted on the meta device: no memory is taken
    with pytest.raises(
        DoesNotFitError, match=r"36 decoder layers at hidden 4096 need 56\.5 GiB .* of 50 GiB RAM"
    ):
        _preflight(NANO, mem_total_gib=50.0)


def test_measured_rejects_inconsistent_counts():
    with pytest.raises(ValueError, match="layers must be >= 1, got 0"):
        Measured(0, 1, 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    with pytest.raises(ValueError, match="exceeds params"):
        Measured(4, 100, 30, 0.0, 0.0, 0.0, 0.0, 0.0, 0)


def test_small_run_writes_every_line_of_the_report(tmp_path):
    out = tmp_path / "report.txt"
    argv = ["--size", "small", "--layers", "1", "--opset", "19", "--fp8", "--work", str(tmp_path / "w")]
    assert main([*argv, "--out", str(out)]) == 0
    text = out.read_text()
    assert f"command: python3 -m cosmos_ros.tools.onnx_nano_check {' '.join(argv)} --out {out}" in text
    keys = ("host:", "model:", "fp32 export", "FP8 Q/DQ inserted", "has_fp8_qdq True", "total:", "estimate")
    for key in keys:
        assert key in text, key
    fp32 = float(re.search(r"same inputs: relative L2 (\S+)", text).group(1))
    assert fp32 <= 1e-4
    # FP8 differs from fp32 by quantisation (~2e-2 at this width), and the two FP8 forms by their calibration.
    qdq_vs_fp32 = float(re.search(r"optimisations off .*?vs torch fp32 (\S+);", text).group(1))
    qdq_vs_fp8, fp8_vs_fp32 = map(
        float, re.search(r"FP8 Q/DQ vs torch FP8 (\S+); torch FP8 vs torch fp32 (\S+);", text).groups()
    )
    for value in (qdq_vs_fp32, qdq_vs_fp8, fp8_vs_fp32):
        assert 1e-4 < value < 0.1
