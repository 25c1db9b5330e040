"""Check, before any model loads, that a GPU deployment has the stack it needs: torch sees CUDA, and (for the
TensorRT backend) ``tensorrt`` imports. Why: on a Jetson, a CPU-only torch from PyPI in a venv without system
packages silently shadows JetPack's CUDA torch, and JetPack's TensorRT bindings exist only for the system
Python; both failures otherwise surface much later as "no CUDA device" or "TensorRT missing"."""

from __future__ import annotations

import importlib.util
from typing import Any


def gpu_stack_problems(device: str, backend: str, torch_module: Any = None) -> list[str]:
    """What is missing for ``device``/``backend`` (empty when ready); the caller raises or logs."""
    problems: list[str] = []
    if device.startswith("cuda"):
        torch = torch_module
        if torch is None:
            import torch
        if not torch.cuda.is_available():
            build = getattr(torch.version, "cuda", None)
            hint = (
                "a CPU-only build: on Jetson use NVIDIA's Jetson torch wheel or JetPack's, in a venv created "
                "with --system-site-packages"
                if build is None
                else f"built for CUDA {build}"
            )
            problems.append(f"device {device}: torch {torch.__version__} sees no CUDA device ({hint})")
    if backend == "tensorrt" and importlib.util.find_spec("tensorrt") is None:
        problems.append(
            "backend tensorrt: `import tensorrt` fails (on Jetson, JetPack installs it for system Python: "
            "create the venv with --system-site-packages)"
        )
    return problems
