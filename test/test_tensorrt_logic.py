"""The TensorRT path's logic, run here without TensorRT (issue 15, defects 1-9): the builder flags chosen per
TensorRT version, the timing cache, the engine cache key, the domain check, the step runner's bindings and
output copy, run against a *fake* ``tensorrt`` module that records what the code asks of it. What the fakes
cannot show, and nothing here shows: that TensorRT itself parses, builds and runs the engine (no machine of
this project has TensorRT; see README, Performance)."""

from __future__ import annotations

import ctypes
import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers", reason="the domain tables come from diffusers' Cosmos 3 pipeline")

from cosmos_ros.runtime.backend import PolicyRequest
from cosmos_ros.runtime.onnx_export import StepExportConfig, engine_cache_key, engine_cache_path


def fake_trt(version: str, has_fp16_flag: bool, has_strongly_typed: bool) -> types.ModuleType:
    """A stand-in for the bindings' surface the package uses, recording calls in ``trt.calls``."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    calls: dict[str, list] = {"create_network": [], "set_flag": [], "timing_cache_in": []}
    trt.calls = calls

    class Flags:
        pass

    if has_strongly_typed:
        Flags.STRONGLY_TYPED = 5
    trt.NetworkDefinitionCreationFlag = Flags

    class BuilderFlag:
        pass

    if has_fp16_flag:
        BuilderFlag.FP16 = 0
    trt.BuilderFlag = BuilderFlag
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class Cache:
        def __init__(self, data: bytes):
            self.data = data

        def serialize(self) -> bytes:
            return b"timing:" + str(len(calls["create_network"])).encode()

    class Config:
        def __init__(self):
            self.cache = None

        def set_memory_pool_limit(self, pool, size):
            pass

        def set_flag(self, flag):
            calls["set_flag"].append(flag)

        def create_timing_cache(self, data):
            calls["timing_cache_in"].append(bytes(data))
            return Cache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls["create_network"].append(flags)
            return object()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            return b"engine-bytes"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            return Path(path).is_file()

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    trt.DataType = types.SimpleNamespace(FLOAT="f32", HALF="f16", BF16="bf16", INT32="i32")
    return trt


@pytest.mark.parametrize(
    ("version", "fp16_flag", "strongly"),
    [("10.3.0", True, True), ("10.13.3", True, True), ("11.0.0", False, False)],
)
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp8"])
def test_builds_strongly_typed_without_the_fp16_flag_on_every_version(
    tmp_path, version, fp16_flag, strongly, precision
):
    from cosmos_ros.tools.export_engine import build_engine

    trt = fake_trt(version, fp16_flag, strongly)
    onnx_path = tmp_path / "step.onnx"
    onnx_path.write_bytes(b"x")
    engine = tmp_path / "e.engine"
    build_engine(trt, onnx_path, engine, precision, 1.0, timing_cache=tmp_path / "timing.cache")
    assert engine.read_bytes() == b"engine-bytes"
    assert trt.calls["set_flag"] == []  # BuilderFlag.FP16 is never touched (gone in TensorRT 11)
    assert trt.calls["create_network"] == [1 << 5 if strongly else 0]


def test_timing_cache_is_kept_beside_the_engines_and_reused(tmp_path):
    from cosmos_ros.tools.export_engine import build_engine

    trt = fake_trt("10.3.0", True, True)
    onnx_path = tmp_path / "step.onnx"
    onnx_path.write_bytes(b"x")
    cache = tmp_path / "timing.cache"
    build_engine(trt, onnx_path, tmp_path / "a.engine", "bf16", 1.0, timing_cache=cache)
    assert cache.read_bytes() == b"timing:1"
    build_engine(trt, onnx_path, tmp_path / "b.engine", "bf16", 1.0, timing_cache=cache)
    assert trt.calls["timing_cache_in"] == [b"", b"timing:1"]  # the second build starts from the first's


def test_cache_key_carries_weights_domain_width_and_opset(tmp_path):
    cfg = StepExportConfig(domain_name="umi")
    base = engine_cache_path(tmp_path, cfg, "bf16", "Thor", "10.13", source="weights-a")
    assert engine_cache_path(tmp_path, cfg, "bf16", "Thor", "10.13", source="weights-a") == base
    assert engine_cache_path(tmp_path, cfg, "bf16", "Thor", "10.13", source="weights-b") != base
    assert engine_cache_path(tmp_path, cfg, "bf16", "Thor", "10.13", source="weights-a", opset=19) != base
    other = StepExportConfig(domain_name="av")  # another raw action width (9, umi has 10)
    assert engine_cache_key(other, "bf16", "weights-a", 17) != engine_cache_key(cfg, "bf16", "weights-a", 17)


def test_model_and_onnx_fingerprints_change_with_the_files(tmp_path):
    from cosmos_ros.runtime.onnx_export import model_fingerprint

    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "config.json").write_text('{"a": 1}')
    (tmp_path / "transformer" / "w.safetensors").write_bytes(b"0" * 10)
    a = model_fingerprint(tmp_path)
    (tmp_path / "transformer" / "config.json").write_text('{"a": 2}')
    b = model_fingerprint(tmp_path)
    (tmp_path / "transformer" / "w.safetensors").write_bytes(b"0" * 11)
    assert len({a, b, model_fingerprint(tmp_path)}) == 3


@pytest.fixture
def trt_backend(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt("10.13.3", True, True))
    monkeypatch.delitem(sys.modules, "cosmos_ros.runtime.tensorrt_backend", raising=False)
    mod = importlib.import_module("cosmos_ros.runtime.tensorrt_backend")
    yield mod
    sys.modules.pop("cosmos_ros.runtime.tensorrt_backend", None)


def _request(domain: str) -> PolicyRequest:
    return PolicyRequest(
        image=np.zeros((256, 256, 3), np.uint8), prompt="x", domain_name=domain, chunk_size=16
    )


def test_request_of_another_domain_width_is_refused(trt_backend):
    from cosmos_ros.runtime.loader import domain_raw_width

    cfg = StepExportConfig(domain_name="umi")
    trt_backend.check_request_matches_engine(_request("umi"), cfg)
    trt_backend.check_request_matches_engine(_request("bridge_orig_lerobot"), cfg)  # same width (10)
    other = "av"  # raw width 9
    assert domain_raw_width(other) != domain_raw_width("umi")
    with pytest.raises(ValueError, match="raw action width"):
        trt_backend.check_request_matches_engine(_request(other), cfg)
    with pytest.raises(ValueError, match="does not match the engine"):
        trt_backend.check_request_matches_engine(
            PolicyRequest(image=np.zeros((240, 320, 3), np.uint8), prompt="x", domain_name="umi"), cfg
        )


class _FakeEngine:
    def __init__(self, names, shapes):
        self.names, self.shapes = names, shapes
        self.num_io_tensors = len(names)

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_dtype(self, name):
        return "f32"

    def get_tensor_shape(self, name):
        return self.shapes[name]

    def create_execution_context(self):
        return _FakeContext(self.shapes)


class _FakeContext:
    """Executes by copying ``state`` into ``velocity`` through the bound addresses (what an engine sees)."""

    def __init__(self, shapes):
        self.addr: dict[str, int] = {}
        self.shapes = shapes
        self.refuse: str | None = None

    def set_tensor_address(self, name, ptr):
        if name == self.refuse:
            return False
        self.addr[name] = ptr
        return True

    def execute_async_v3(self, stream):
        n = int(np.prod(self.shapes["velocity"])) * 4
        ctypes.memmove(self.addr["velocity"], self.addr["state"], n)
        return True


def _step(trt_backend, tmp_path, monkeypatch):
    from cosmos_ros.runtime.onnx_export import INPUT_NAMES, OUTPUT_NAMES

    shapes = {n: (4,) for n in INPUT_NAMES + OUTPUT_NAMES}
    engine = _FakeEngine(list(INPUT_NAMES + OUTPUT_NAMES), shapes)
    runtime = types.SimpleNamespace(deserialize_cuda_engine=lambda data: engine)
    monkeypatch.setattr(trt_backend.trt, "Runtime", lambda logger: runtime, raising=False)
    path = tmp_path / "x.engine"
    path.write_bytes(b"e")
    return trt_backend.TensorRTStep(path, torch.device("cpu")), INPUT_NAMES


def test_step_returns_a_copy_and_checks_bindings(trt_backend, tmp_path, monkeypatch):
    step, names = _step(trt_backend, tmp_path, monkeypatch)
    feeds = {n: torch.zeros(4) for n in names}
    feeds["state"] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    first = step(feeds)
    assert first.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert first.data_ptr() != step.out.data_ptr()  # not the engine's buffer
    feeds["state"] = torch.tensor([5.0, 6.0, 7.0, 8.0])
    step(feeds)
    assert first.tolist() == [1.0, 2.0, 3.0, 4.0]  # the next step did not overwrite it
    static = step.cast_static({"k_und": torch.zeros(4, dtype=torch.float64)})
    assert static["k_und"].dtype == torch.float32  # cast once per plan, not per step
    step.context.refuse = "k_und"
    with pytest.raises(RuntimeError, match="refused the address of 'k_und'"):
        step(feeds)


class _CudaStreamContext(_FakeContext):
    """Executes on the stream it is handed, slowly: reads ``state``, sleeps on the GPU, writes ``2 * state``.

    Reading first and writing late makes a missing synchronisation visible: were the engine's stream not made
    to wait for the caller's (still sleeping before it writes the input), the engine would read the old
    input; were the caller's not made to wait for the engine's, the step would copy the output before the
    engine wrote it.
    """

    def __init__(self, shapes, tensors: dict[int, torch.Tensor]):
        super().__init__(shapes)
        self.tensors = tensors  # data_ptr -> tensor: the fake reads and writes through the bound addresses
        self.handles: list[int] = []

    def execute_async_v3(self, stream):
        self.handles.append(stream)
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            doubled = self.tensors[self.addr["state"]] * 2
            torch.cuda._sleep(100_000_000)  # GPU cycles: tens of ms on any current GPU
            self.tensors[self.addr["velocity"]].copy_(doubled)
        return True


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (issue 15 defect 4: the engine's own stream)"
)
def test_step_runs_on_a_dedicated_stream_ordered_with_the_callers(trt_backend, tmp_path, monkeypatch):
    from cosmos_ros.runtime.onnx_export import INPUT_NAMES, OUTPUT_NAMES

    shapes = {n: (4096,) for n in INPUT_NAMES + OUTPUT_NAMES}
    engine = _FakeEngine(list(INPUT_NAMES + OUTPUT_NAMES), shapes)
    runtime = types.SimpleNamespace(deserialize_cuda_engine=lambda data: engine)
    monkeypatch.setattr(trt_backend.trt, "Runtime", lambda logger: runtime, raising=False)
    (tmp_path / "x.engine").write_bytes(b"e")
    step = trt_backend.TensorRTStep(tmp_path / "x.engine", torch.device("cuda"))
    feeds = {n: torch.zeros(4096, device="cuda") for n in INPUT_NAMES}  # engine dtype: bound without a copy
    context = _CudaStreamContext(shapes, {t.data_ptr(): t for t in [*feeds.values(), step.out]})
    step.context = context
    caller = torch.cuda.current_stream()
    for value in (1.0, 2.0, 3.0):
        torch.cuda._sleep(100_000_000)  # the caller's stream is still busy when the step is called...
        feeds["state"].fill_(value)  # ...and writes the input after that
        velocity = step(feeds)
        assert velocity.device.type == "cuda"
        assert torch.equal(velocity, torch.full_like(velocity, 2 * value)), f"step {value}: unordered streams"
    assert len(set(context.handles)) == 1, "one stream of the step's own, not one per call"
    assert context.handles[0] not in (0, caller.cuda_stream), "not the legacy default nor the caller's stream"
