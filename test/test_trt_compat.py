"""The exported step graphs (fp32 at opset 17, and with FP8 Q/DQ at opset 19) use only operators, opsets and
data types of TensorRT 10.x's ONNX parser table (``cosmos_ros.runtime.trt_compat``), checked on the tiny
model's export; plus the FP8 Q/DQ detection and the one-file external-data layout on small graphs."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="diffusers is needed to build the tiny Cosmos 3 pipeline")
onnx = pytest.importorskip("onnx", reason="reads the exported graphs")
ort = pytest.importorskip("onnxruntime", reason="runs the FP8 Q/DQ graph")

from diffusers import DiffusionPipeline  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cosmos_ros.runtime.fast import FastPolicyBackend, relative_l2  # noqa: E402
from cosmos_ros.runtime.onnx_export import (  # noqa: E402
    StepExportConfig,
    _save_single_data_file,
    example_plan,
    export_step_onnx,
    external_data_files,
    has_fp8_qdq,
    quantize_onnx_fp8,
    step_inputs,
)
from cosmos_ros.runtime.trt_compat import graph_inventory, trt10_problems  # noqa: E402
from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_compat")
    pipe = DiffusionPipeline.from_pretrained(str(make_tiny_pipeline(d / "model", seed=0)))
    backend = FastPolicyBackend(pipe, use_cuda_graph=False, use_compile=False, cache_text=False)
    und = example_plan(backend, StepExportConfig(chunk_size=8)).layouts[0].und_len
    cfg = StepExportConfig(chunk_size=8, text_bucket=und + 4)
    p17 = export_step_onnx(pipe, cfg, d / "fp32" / "step.onnx")
    p19 = export_step_onnx(pipe, cfg, d / "fp32_19" / "step.onnx", opset=19)
    plan = example_plan(backend, cfg)
    feeds = [
        step_inputs(backend, plan.layouts[0], plan.x0_state, plan.tembs[i : i + 1], cfg.text_bucket)
        for i in (0, 1)
    ]
    calib = [{k: v.numpy() for k, v in feeds[0].items()}]
    p8 = d / "fp8" / "step.onnx"
    info = quantize_onnx_fp8(p19, p8, calib, min_weight=256)  # the tiny model's linears are small
    return {"p17": p17, "p19": p19, "p8": p8, "info": info, "feeds": feeds[1]}


@pytest.mark.parametrize("key", ["p17", "p8"])
def test_exported_graph_is_inside_tensorrt10_parser_support(exports, key):
    inv = graph_inventory(exports[key])
    assert "MatMul" in inv.ops and "FLOAT" in inv.dtypes  # the inventory really read the graph
    if key == "p8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= inv.ops and "FLOAT8E4M3FN" in inv.dtypes
    assert trt10_problems(inv) == []


def test_compat_check_flags_what_tensorrt_lacks(exports):
    inv = graph_inventory(exports["p17"])
    inv.ops.add("NonZero")
    inv.dtypes.add("COMPLEX64")
    inv.opsets["ai.onnx"] = 23
    problems = trt10_problems(inv)
    assert any("NonZero" in p for p in problems) and any("COMPLEX64" in p for p in problems)
    assert any("opset 23" in p for p in problems)


def test_fp8_qdq_graph_runs_and_is_detected(exports):
    assert exports["info"]["quantised"] > 0
    assert has_fp8_qdq(exports["p8"]) and not has_fp8_qdq(exports["p17"])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    feeds = {k: v.numpy() for k, v in exports["feeds"].items()}
    ref = ort.InferenceSession(str(exports["p19"]), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = ort.InferenceSession(str(exports["p8"]), opts, providers=["CPUExecutionProvider"]).run(None, feeds)[
        0
    ]
    assert 1e-4 < relative_l2(got, ref) < 0.1  # quantised: close, not equal


def _qdq_graph(tmp_path, zp_type, op_prefix="", domain=""):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    zp = helper.make_tensor("zp", zp_type, [], vals=b"\x00", raw=True)
    s = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    nodes = [
        helper.make_node(op_prefix + "QuantizeLinear", ["x", "s", "zp"], ["q"], domain=domain),
        helper.make_node(op_prefix + "DequantizeLinear", ["q", "s", "zp"], ["y"], domain=domain),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], [zp, s]), opset_imports=[helper.make_opsetid("", 19)]
    )
    path = tmp_path / f"{op_prefix or 'std'}_{zp_type}.onnx"
    onnx.save_model(model, str(path))
    return path


def test_int8_qdq_is_not_fp8_and_trt_custom_fp8_ops_are(tmp_path):
    assert not has_fp8_qdq(_qdq_graph(tmp_path, TensorProto.INT8))
    assert has_fp8_qdq(_qdq_graph(tmp_path, TensorProto.FLOAT8E4M3FN))
    assert has_fp8_qdq(_qdq_graph(tmp_path, TensorProto.INT8, op_prefix="TRT_FP8", domain="trt"))


def test_external_data_goes_to_one_file_per_export(tmp_path):
    """Per-initializer external files (the legacy exporter past 2 GB) become one ``.data`` file."""
    w = [
        numpy_helper.from_array(
            np.random.default_rng(i).standard_normal((64, 64)).astype(np.float32), f"onnx__MatMul_{i}"
        )
        for i in range(3)
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 64])
    nodes = [
        helper.make_node("MatMul", ["x", "onnx__MatMul_0"], ["a"]),
        helper.make_node("MatMul", ["a", "onnx__MatMul_1"], ["b"]),
        helper.make_node("MatMul", ["b", "onnx__MatMul_2"], ["y"]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], w), opset_imports=[helper.make_opsetid("", 17)]
    )
    src = tmp_path / "scratch" / "m.onnx"
    src.parent.mkdir()
    onnx.save_model(
        model, str(src), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0
    )
    assert len(list(src.parent.iterdir())) == 4  # the legacy layout: one file per initializer
    dst = tmp_path / "export" / "step.onnx"
    dst.parent.mkdir()
    _save_single_data_file(src, dst)
    assert sorted(p.name for p in dst.parent.iterdir()) == ["step.onnx", "step.onnx.data"]
    assert external_data_files(dst) == ["step.onnx.data"]
    feeds = {"x": np.ones((2, 64), np.float32)}
    a = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    b = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.array_equal(a, b)


def test_small_export_writes_only_its_file(exports):
    assert [p.name for p in exports["p17"].parent.iterdir()] == ["step.onnx"]
