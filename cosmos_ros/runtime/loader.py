"""Load a Cosmos 3 pipeline from a local directory, failing early and clearly.

Why check before ``from_pretrained``: a planner is configured once and then expected to run for hours. A
missing component or a corrupt JSON must stop it at configure time with a message naming the path and what
is missing, not surface as a diffusers traceback at the first camera image. The checks follow the directory's
own ``model_index.json`` (the ``nvidia/Cosmos3-Nano`` layout: ``transformer/``, ``vae/``, ``text_tokenizer/``,
``scheduler/``, optional ``sound_tokenizer/`` / ``safety_checker/``), so a real checkpoint and the tiny test
model (``cosmos_ros.tools.make_tiny_model``) take the same path. Loading is offline (``local_files_only``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

PIPELINE_CLASS = "Cosmos3OmniPipeline"
DTYPES = ("float32", "bfloat16", "float16")

# What a component directory must contain, by the library class that loads it. Anything not listed only has
# to exist and be non-empty.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete, corrupt, or not a usable Cosmos 3 action model."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"corrupt JSON in {path}: {exc}") from exc
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def check_model_dir(path: str | Path) -> dict[str, Any]:
    """Check a pipeline directory's structure without importing torch; return its ``model_index.json``.

    Raises:
        ModelLoadError: Naming the path and what is missing or corrupt.
    """
    root = Path(path)
    if not root.exists():
        raise ModelLoadError(f"model directory does not exist: {root}")
    if not root.is_dir():
        raise ModelLoadError(f"model path is not a directory: {root}")
    index_path = root / "model_index.json"
    if not index_path.is_file():
        raise ModelLoadError(f"{root} has no model_index.json (not a diffusers pipeline directory)")
    index = _read_json(index_path)
    cls = index.get("_class_name")
    if cls != PIPELINE_CLASS:
        raise ModelLoadError(f"{index_path}: _class_name is {cls!r}, expected {PIPELINE_CLASS!r}")
    problems: list[str] = []
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list):
            continue
        if len(spec) != 2:
            problems.append(f"model_index.json entry {name!r} must be [library, class], got {spec!r}")
            continue
        if spec[0] is None or spec[1] is None:
            continue  # optional component absent (e.g. sound_tokenizer, safety_checker)
        sub = root / name
        if not sub.is_dir():
            problems.append(f"missing component directory {sub}/ ({spec[0]}.{spec[1]})")
            continue
        files = [p.name for p in sub.iterdir()]
        if not files:
            problems.append(f"component directory {sub}/ is empty")
            continue
        if (sub / "config.json").exists():
            _read_json(sub / "config.json")
            if not any(f.endswith(_WEIGHT_SUFFIXES) for f in files):
                problems.append(f"{sub}/ has config.json but no weights (*.safetensors or *.bin)")
        if (sub / "scheduler_config.json").exists():
            _read_json(sub / "scheduler_config.json")
        if (sub / "tokenizer_config.json").exists():
            _read_json(sub / "tokenizer_config.json")
        if (sub / "tokenizer.json").exists():
            _read_json(sub / "tokenizer.json")
    for required in ("transformer", "vae", "text_tokenizer", "scheduler"):
        spec = index.get(required)
        if not (isinstance(spec, list) and len(spec) == 2 and spec[0] is not None):
            problems.append(f"model_index.json has no {required!r} component")
    if problems:
        raise ModelLoadError(f"model directory {root} is incomplete: " + "; ".join(problems))
    return index


def check_action_config(
    transformer_config: Mapping[str, Any], required_width: int | None, where: str
) -> None:
    """Raise if a transformer config cannot generate actions of ``required_width`` columns."""
    if not transformer_config.get("action_gen", False):
        raise ModelLoadError(
            f"{where}: the transformer has no action generation (action_gen is not true); "
            "policy mode needs a Cosmos 3 checkpoint trained with actions"
        )
    action_dim = transformer_config.get("action_dim")
    if not isinstance(action_dim, int) or action_dim < 1:
        raise ModelLoadError(f"{where}: action_dim must be a positive int, got {action_dim!r}")
    if required_width is not None and action_dim < required_width:
        raise ModelLoadError(
            f"{where}: action_dim={action_dim} is narrower than the action domain's raw width "
            f"{required_width}"
        )


def domain_raw_width(domain_name: str) -> int:
    """Raw action width of a Cosmos 3 embodiment domain, from the installed pipeline's own table.

    Raises:
        ValueError: Unknown domain, listing the supported ones.
    """
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import _EMBODIMENT_TO_RAW_ACTION_DIM

    if domain_name not in _EMBODIMENT_TO_RAW_ACTION_DIM:
        raise ValueError(
            f"domain_name {domain_name!r} has no fixed action width; supported: "
            f"{sorted(_EMBODIMENT_TO_RAW_ACTION_DIM)}"
        )
    return int(_EMBODIMENT_TO_RAW_ACTION_DIM[domain_name])


def resolve_dtype(dtype: Any) -> Any:
    """``"float32" | "bfloat16" | "float16"`` or a ``torch.dtype`` -> ``torch.dtype``."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return getattr(torch, dtype)


def resolve_device(device: Any) -> Any:
    """Parse ``device`` and check it exists here (``cuda`` without a GPU is an error at load, not later)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be like 'cpu', 'cuda' or 'cuda:0', got {device!r}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    return dev


def validate_pipeline(pipe: Any, required_width: int | None = None, where: str = "pipeline") -> None:
    """Check a loaded object is a ``Cosmos3OmniPipeline`` whose transformer can emit ``required_width``."""
    from diffusers import Cosmos3OmniPipeline

    if not isinstance(pipe, Cosmos3OmniPipeline):
        raise ModelLoadError(f"{where}: loaded a {type(pipe).__name__}, expected {PIPELINE_CLASS}")
    transformer = getattr(pipe, "transformer", None)
    if transformer is None:
        raise ModelLoadError(f"{where}: pipeline has no transformer")
    check_action_config(dict(transformer.config), required_width, where)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Turn off diffusers' and transformers' load progress bars for the block, restoring them afterwards.

    A tqdm bar is a line of carriage returns: under ``ros2 launch`` it ends up as an empty, prefixed log
    line; in a log file, as noise. The node logs the load time itself.
    """
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    restore = [m for m in (diffusers_logging, transformers_logging) if m.is_progress_bar_enabled()]
    for m in restore:
        m.disable_progress_bar()
    try:
        yield
    finally:
        for m in restore:
            m.enable_progress_bar()


def load_pipeline(
    path: str | Path,
    device: Any = "cpu",
    dtype: Any = "float32",
    required_width: int | None = None,
    enable_safety_checker: bool | None = None,
) -> Any:
    """Load a ``Cosmos3OmniPipeline`` from a local directory, offline, validated for policy use.

    Args:
        path: Pipeline directory (``model_index.json`` + component subdirectories).
        device: ``cpu`` or ``cuda[:N]``.
        dtype: ``float32``, ``bfloat16`` or ``float16`` (or a ``torch.dtype``).
        required_width: Raw width of the action domain to be served; the transformer's ``action_dim`` must be
            at least this (``None`` skips the width check, not the ``action_gen`` check).
        enable_safety_checker: Override the checkpoint's ``enable_safety_checker`` (the Cosmos guardrail,
            which needs the ``cosmos_guardrail`` package). ``None`` keeps the checkpoint's choice, so turning
            the guardrail off is always an explicit decision of the caller.

    Returns:
        The pipeline, on ``device``, with the progress bar disabled.

    Raises:
        ModelLoadError: Missing/incomplete/corrupt directory, wrong class, no action support, too narrow.
        ValueError: Bad ``device`` or ``dtype``.
        ImportError: The checkpoint enables the guardrail but ``cosmos_guardrail`` is not installed.
    """
    root = Path(path)
    check_model_dir(root)
    check_action_config(_read_json(root / "transformer" / "config.json"), required_width, str(root))
    torch_dtype = resolve_dtype(dtype)
    dev = resolve_device(device)

    from diffusers import DiffusionPipeline

    overrides: dict[str, Any] = {}
    if enable_safety_checker is not None:
        overrides["enable_safety_checker"] = bool(enable_safety_checker)
    try:
        with _no_progress_bars():
            pipe = DiffusionPipeline.from_pretrained(
                str(root), local_files_only=True, dtype=torch_dtype, **overrides
            )
    except ImportError:
        raise
    except Exception as exc:  # diffusers raises many types; name the path, keep the cause
        raise ModelLoadError(f"loading pipeline from {root} failed: {type(exc).__name__}: {exc}") from exc
    validate_pipeline(pipe, required_width, str(root))
    pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)
    return pipe
