"""``gpu_stack_problems``: the set-up/configure check that torch sees CUDA and TensorRT imports."""

from __future__ import annotations

import sys
import types

from cosmos_ros.runtime.platform_check import gpu_stack_problems


def _torch(cuda: bool, build: str | None) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        __version__="2.13.0",
        version=types.SimpleNamespace(cuda=build),
        cuda=types.SimpleNamespace(is_available=lambda: cuda),
    )


def test_cpu_device_needs_nothing():
    assert gpu_stack_problems("cpu", "fast") == []


def test_cpu_only_torch_on_cuda_device_is_named(monkeypatch):
    problems = gpu_stack_problems("cuda", "fast", torch_module=_torch(False, None))
    assert len(problems) == 1 and "CPU-only build" in problems[0] and "--system-site-packages" in problems[0]
    assert gpu_stack_problems("cuda:0", "fast", torch_module=_torch(True, "12.6")) == []


def test_missing_tensorrt_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None if name == "tensorrt" else object())
    problems = gpu_stack_problems("cuda", "tensorrt", torch_module=_torch(True, "12.6"))
    assert len(problems) == 1 and "import tensorrt" in problems[0]
