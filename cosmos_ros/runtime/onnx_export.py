"""Export the fast path's denoiser step to ONNX for one fixed configuration (the TensorRT input).

Why one step and not the whole call: the sampling loop (noise, sampler coefficients, guidance) is a few
vector operations per step and stays in Python around the engine; the step is where all the weights and
FLOPs are. An engine has static shapes, so a configuration fixes them: resolution tier and input image size
(they fix the latent grid), chunk size (action tokens and latent frames) and a *prompt-length bucket*: text
keys/values enter padded to the bucket, with an additive key mask that gives padded keys zero weight, so
every prompt up to the bucket's length runs on one engine.

The exported graph computes exactly ``FastPolicyBackend._gen_step`` (the same Python runs under the tracer):

    inputs:  state [numel] f32 (vision + action latents), temb [1, hidden], k_und / v_und [L, H, bucket, D],
             key_mask [1, 1, 1, bucket + gen] (0 or a large negative), cos_gen / sin_gen [gen, D],
             w_in [A, hidden], b_in [hidden], w_out [hidden, A], b_out [A] (the embodiment's action heads)
    output:  velocity [numel] f32
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from cosmos_ros.runtime.backend import CHUNK_MULTIPLE, RESOLUTION_TIERS, PolicyRequest
from cosmos_ros.runtime.fast import FastPolicyBackend, _PlanLayout

INPUT_NAMES = (
    "state",
    "temb",
    "k_und",
    "v_und",
    "key_mask",
    "cos_gen",
    "sin_gen",
    "w_in",
    "b_in",
    "w_out",
    "b_out",
)
OUTPUT_NAMES = ("velocity",)


@dataclass(frozen=True)
class StepExportConfig:
    """The static shapes of one exported denoiser step.

    Attributes:
        resolution_tier: Conditioning canvas tier (one of ``RESOLUTION_TIERS``).
        image_height: Input image height in pixels (with the tier, fixes the latent grid).
        image_width: Input image width in pixels.
        chunk_size: Action chunk (a positive multiple of 4).
        text_bucket: Text tokens are padded to this length; longer prompts need a larger bucket.
        domain_name: Embodiment used to trace the export. Its action heads are inputs, but its raw action
            width (velocities beyond it are zeroed) is traced in: the engine serves domains of that width.
    """

    resolution_tier: int = 256
    image_height: int = 256
    image_width: int = 256
    chunk_size: int = 16
    text_bucket: int = 256
    domain_name: str = "umi"

    def __post_init__(self) -> None:
        if self.resolution_tier not in RESOLUTION_TIERS:
            raise ValueError(f"resolution_tier must be one of {RESOLUTION_TIERS}, got {self.resolution_tier}")
        if self.image_height < 2 or self.image_width < 2:
            raise ValueError(f"image size must be at least 2x2, got {self.image_width}x{self.image_height}")
        if self.chunk_size <= 0 or self.chunk_size % CHUNK_MULTIPLE != 0:
            raise ValueError(
                f"chunk_size must be a positive multiple of {CHUNK_MULTIPLE}, got {self.chunk_size}"
            )
        if self.text_bucket < 1:
            raise ValueError(f"text_bucket must be >= 1, got {self.text_bucket}")

    def tag(self) -> str:
        """A file-name-safe id of the configuration (engine caches key on it)."""
        return (
            f"tier{self.resolution_tier}_{self.image_height}x{self.image_width}"
            f"_chunk{self.chunk_size}_text{self.text_bucket}"
        )


def sanitize(name: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"NVIDIA_H100_80GB_HBM3"`` (for cache file names)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")


class DenoiserStep(torch.nn.Module):
    """The fast path's step as a module with tensor inputs only (what the ONNX tracer needs)."""

    def __init__(self, backend: FastPolicyBackend, layout: _PlanLayout):
        super().__init__()
        self.transformer = backend.tr  # registered so its weights export as initializers
        self.backend = backend
        self.layout = layout

    def forward(
        self,
        state: torch.Tensor,
        temb: torch.Tensor,
        k_und: torch.Tensor,
        v_und: torch.Tensor,
        key_mask: torch.Tensor,
        cos_gen: torch.Tensor,
        sin_gen: torch.Tensor,
        w_in: torch.Tensor,
        b_in: torch.Tensor,
        w_out: torch.Tensor,
        b_out: torch.Tensor,
    ) -> torch.Tensor:
        bufs = SimpleNamespace(
            k=list(k_und.unbind(0)),
            v=list(v_und.unbind(0)),
            cos_gen=cos_gen,
            sin_gen=sin_gen,
            w_in=w_in,
            b_in=b_in,
            w_out=w_out,
            b_out=b_out,
        )
        return self.backend._gen_step(state, temb, self.layout, bufs, mask=key_mask)


def step_inputs(
    backend: FastPolicyBackend, layout: _PlanLayout, state: torch.Tensor, temb: torch.Tensor, text_bucket: int
) -> dict[str, torch.Tensor]:
    """The engine's inputs for one step of a plan: text keys/values padded to ``text_bucket`` plus the mask.

    Raises:
        ValueError: The prompt has more text tokens than the bucket holds.
    """
    u = layout.und_len
    if u > text_bucket:
        raise ValueError(f"prompt has {u} text tokens; this configuration's text_bucket is {text_bucket}")
    k = torch.stack(layout.k_und)  # [L, H, u, D]
    v = torch.stack(layout.v_und)
    pad = text_bucket - u
    if pad:
        k = torch.nn.functional.pad(k, (0, 0, 0, pad))
        v = torch.nn.functional.pad(v, (0, 0, 0, pad))
    n_gen = layout.num_vision_tokens + layout.action_len
    mask = torch.zeros(text_bucket + n_gen, dtype=backend.dtype, device=k.device)
    mask[u:text_bucket] = torch.finfo(backend.dtype).min
    mask = mask.view(1, 1, 1, -1)  # broadcast over batch, heads and queries
    return {
        "state": state,
        "temb": temb,
        "k_und": k.contiguous(),
        "v_und": v.contiguous(),
        "key_mask": mask,
        "cos_gen": layout.cos_gen,
        "sin_gen": layout.sin_gen,
        "w_in": layout.w_in.contiguous(),
        "b_in": layout.b_in.contiguous(),
        "w_out": layout.w_out.contiguous(),
        "b_out": layout.b_out.contiguous(),
    }


def example_plan(
    backend: FastPolicyBackend, config: StepExportConfig, prompt: str = "pick up the cube"
) -> Any:
    """Prepare a plan of ``config``'s shapes (a grey image), to trace the export and to test it."""
    request = PolicyRequest(
        image=np.full((config.image_height, config.image_width, 3), 128, dtype=np.uint8),
        prompt=prompt,
        domain_name=config.domain_name,
        chunk_size=config.chunk_size,
        resolution_tier=config.resolution_tier,
        num_inference_steps=2,
    )
    return backend.prepare(request, torch.Generator("cpu").manual_seed(0))


@torch.no_grad()
def export_step_onnx(
    pipe: Any,
    config: StepExportConfig,
    out_path: str | Path,
    opset: int = 17,
    prompt: str = "pick up the cube",
) -> Path:
    """Write the denoiser step of ``pipe`` for ``config`` to ``out_path`` (ONNX).

    Past protobuf's 2 GB the weights go to ONE external-data file beside it, ``<name>.data`` (the legacy
    exporter alone writes one file per initializer with generic names such as ``onnx__MatMul_10``, which
    collide between exports sharing a directory). Give every export its own directory: files of an earlier
    export of the same name there are replaced.

    Returns:
        The path written.
    """
    import shutil
    import tempfile

    backend = FastPolicyBackend(pipe, use_cuda_graph=False, use_compile=False, cache_text=False)
    plan = example_plan(backend, config, prompt)
    layout = plan.layouts[0]
    inputs = step_inputs(backend, layout, plan.x0_state, plan.tembs[:1], config.text_bucket)
    module = DenoiserStep(backend, layout).eval()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = out.with_name(out.name + ".data")
    # Export into a private scratch directory first: a crash leaves no half-written files beside ``out``.
    with tempfile.TemporaryDirectory(prefix=".export_", dir=out.parent) as scratch:
        tmp = Path(scratch) / out.name
        torch.onnx.export(
            module,
            tuple(inputs[name] for name in INPUT_NAMES),
            str(tmp),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
        del module, backend, plan, inputs
        import gc

        gc.collect()
        external = len(list(Path(scratch).iterdir())) > 1
        for stale in (out, data):
            stale.unlink(missing_ok=True)
        if external:
            _save_single_data_file(tmp, out)
        else:
            shutil.move(str(tmp), str(out))
    return out


def _save_single_data_file(src: Path, dst: Path) -> None:
    """Re-save ``src`` (with per-initializer external files) as ``dst`` + one ``dst.name + '.data'``."""
    import onnx

    model = onnx.load(str(src), load_external_data=True)
    onnx.save_model(
        model,
        str(dst),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=dst.name + ".data",
        size_threshold=1024,
    )


def external_data_files(onnx_path: str | Path) -> list[str]:
    """The external-data file names an ONNX model references (empty when its weights are inline)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    model = onnx.load(str(onnx_path), load_external_data=False)
    names: set[str] = set()
    for t in _get_all_tensors(model):
        if uses_external_data(t):
            names.update(e.value for e in t.external_data if e.key == "location")
    return sorted(names)


# ---------------------------------------------------------------------------------------------- FP8 Q/DQ

FP8_QDQ_CUSTOM_OPS = ("TRT_FP8QuantizeLinear", "TRT_FP8DequantizeLinear")


def has_fp8_qdq(onnx_path: str | Path) -> bool:
    """Whether the graph carries FP8 quantisation: standard Q/DQ to/from ``float8e4m3fn`` or TensorRT's
    ``TRT_FP8QuantizeLinear``/``TRT_FP8DequantizeLinear`` custom ops (as older ModelOpt exports write).

    INT8 (or UINT8/INT4) Q/DQ is not FP8 and returns ``False``: an engine built from it would be INT8.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    fp8_types = {onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.FLOAT8E4M3FNUZ}
    inits = {i.name: i.data_type for i in model.graph.initializer}
    consts = {
        o: a.t.data_type
        for n in model.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value"
        for o in n.output
    }
    for node in model.graph.node:
        if node.op_type in FP8_QDQ_CUSTOM_OPS:
            return True
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        attrs = {a.name: a for a in node.attribute}
        if (
            "output_dtype" in attrs and attrs["output_dtype"].i in fp8_types
        ):  # opset 21 Q without a zero point
            return True
        # The zero point (Q: 3rd input, DQ: 3rd input) carries the quantised type; for DQ the data input too.
        candidates = list(node.input[2:3])
        if node.op_type == "DequantizeLinear":
            candidates.append(node.input[0])
        for name in candidates:
            if inits.get(name, consts.get(name)) in fp8_types:
                return True
    return False


def _fp8_bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().view(torch.uint8).cpu().numpy().tobytes()


@torch.no_grad()
def quantize_onnx_fp8(
    src: str | Path, dst: str | Path, calibration_feeds: list[dict[str, np.ndarray]], min_weight: int = 4096
) -> dict[str, Any]:
    """Insert FP8 (e4m3) Q/DQ around every weight product of an exported step: the TensorRT FP8 form.

    Weights: per-output-channel scales (DequantizeLinear with ``axis``), stored as ``float8e4m3fn``.
    Activations: one static scale per product input, ``amax / 448`` over ``calibration_feeds`` (TensorRT's FP8
    takes static activation scales; the torch FP8 path uses dynamic per-token ones, so the two differ by
    the calibration, not by arithmetic). Needs opset >= 19 (export with ``opset=19``).

    Only ``MatMul`` nodes whose second input is a 2-D initializer with at least ``min_weight`` elements are
    quantised (the large linears); the action heads are inputs, not initializers, and stay in full precision.

    Returns:
        ``{"quantised": count, "skipped": count, "opset": int}``.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src), load_external_data=True)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 19:
        raise ValueError(f"FP8 Q/DQ needs opset >= 19, {src} is opset {opset} (export with opset=19)")
    inits = {i.name: i for i in model.graph.initializer}
    targets = [
        n
        for n in model.graph.node
        if n.op_type == "MatMul"
        and n.input[1] in inits
        and len(inits[n.input[1]].dims) == 2
        and int(np.prod(inits[n.input[1]].dims)) >= min_weight
    ]
    if not targets:  # (onnxruntime would return every output for an empty request list below)
        raise ValueError(f"{src}: no MatMul with a 2-D weight initializer of >= {min_weight} elements")
    # Calibrate: expose each product's activation input and take its amax over the calibration feeds.
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    acts = sorted({n.input[0] for n in targets})
    for name in acts:
        if name not in known:
            probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    with _tmp_model(probe, dst.parent) as probe_path:
        sess = ort.InferenceSession(str(probe_path), providers=["CPUExecutionProvider"])
        amax = dict.fromkeys(acts, 0.0)
        for feeds in calibration_feeds:
            outs = sess.run(acts, feeds)
            for name, val in zip(acts, outs, strict=True):
                amax[name] = max(amax[name], float(np.abs(val).max()))
        del sess
    zp = helper.make_tensor("fp8_zero_point", TensorProto.FLOAT8E4M3FN, [], vals=b"\x00", raw=True)
    new_inits = [zp]
    new_nodes: list[Any] = []
    act_done: dict[str, str] = {}
    target_ids = {id(n) for n in targets}
    from cosmos_ros.runtime.fp8 import E4M3_MAX, quantize_weight

    for node in model.graph.node:
        if id(node) not in target_ids:
            new_nodes.append(node)
            continue
        x, w_name = node.input[0], node.input[1]
        if x not in act_done:
            s_name = f"{x}_fp8_scale"
            new_inits.append(
                numpy_helper.from_array(np.array(max(amax[x], 1e-12) / E4M3_MAX, dtype=np.float32), s_name)
            )
            q, dq = f"{x}_fp8_q", f"{x}_fp8_dq"
            new_nodes.append(helper.make_node("QuantizeLinear", [x, s_name, zp.name], [q], name=q))
            new_nodes.append(helper.make_node("DequantizeLinear", [q, s_name, zp.name], [dq], name=dq))
            act_done[x] = dq
        w = torch.from_numpy(numpy_helper.to_array(inits[w_name]).copy()).float()  # [K, N]
        w8, scale = quantize_weight(w.t())  # per output channel (N)
        w8_name, ws_name, wdq = f"{w_name}_fp8", f"{w_name}_fp8_scale", f"{w_name}_fp8_dq"
        new_inits.append(
            helper.make_tensor(
                w8_name, TensorProto.FLOAT8E4M3FN, list(w.shape), vals=_fp8_bytes(w8.t()), raw=True
            )
        )
        new_inits.append(numpy_helper.from_array(scale.reshape(-1).numpy().astype(np.float32), ws_name))
        new_nodes.append(helper.make_node("DequantizeLinear", [w8_name, ws_name], [wdq], name=wdq, axis=1))
        new_nodes.append(helper.make_node("MatMul", [act_done[x], wdq], list(node.output), name=node.name))
    used = {i for n in new_nodes for i in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + new_inits)
    dst.parent.mkdir(parents=True, exist_ok=True)
    big = sum(len(i.raw_data) for i in model.graph.initializer) > 1_800_000_000
    onnx.save_model(
        model,
        str(dst),
        save_as_external_data=big,
        all_tensors_to_one_file=True,
        location=dst.name + ".data",
    )
    return {"quantised": len(targets), "activations": len(act_done), "opset": opset}


class _tmp_model:  # noqa: N801 - used as a context manager like a function
    """Save ``model`` to a scratch directory under ``where`` (external data if large); remove it after."""

    def __init__(self, model: Any, where: Path):
        self.model = model
        self.where = where

    def __enter__(self) -> Path:
        import tempfile

        import onnx

        self.where.mkdir(parents=True, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=".calib_", dir=self.where)
        path = Path(self.dir) / "probe.onnx"
        onnx.save_model(
            self.model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="probe.data",
        )
        return path

    def __exit__(self, *exc: object) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


EXPORT_OPSET = 17
ENGINE_PRECISIONS = ("bf16", "fp16", "fp8")
# Bump when the exported graph changes for the same weights (the engine cache keys on it).
EXPORTER_REVISION = "step-v2"


def file_fingerprint(path: Path) -> str:
    """sha256 of an ONNX file and of the external-data files it references (name, size, content)."""
    import hashlib

    h = hashlib.sha256()
    files = [path] + [path.parent / name for name in external_data_files(path)]
    for f in files:
        h.update(f.name.encode() + b"\0" + str(f.stat().st_size).encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()


def model_fingerprint(model_dir: Path) -> str:
    """Identity of a pipeline directory without reading its weights: every file's relative path, size and
    modification time, plus the content of its JSON configuration files (a re-quantised or re-downloaded
    checkpoint changes at least one of them)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in Path(model_dir).rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(model_dir)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        if f.suffix == ".json":
            h.update(f.read_bytes())
    return h.hexdigest()


def engine_cache_key(config: StepExportConfig, precision: str, source: str, opset: int) -> str:
    """16 hex digits over what is baked into an engine besides its file name's fields: the weights' source
    fingerprint, the domain's raw action width (traced in as a constant), the exporter (torch version and
    this module's revision) and the opset."""
    import hashlib

    from cosmos_ros.runtime.loader import domain_raw_width

    parts = [
        config.tag(),
        precision,
        source,
        f"domain_width={domain_raw_width(config.domain_name)}",
        f"torch={torch.__version__}",
        EXPORTER_REVISION,
        f"opset={opset}",
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def engine_cache_path(
    cache_dir: str | Path,
    config: StepExportConfig,
    precision: str,
    device_name: str,
    trt_version: str,
    source: str = "",
    opset: int = EXPORT_OPSET,
) -> Path:
    """Where the engine of ``config`` built for ``device_name`` with TensorRT ``trt_version`` is cached.

    Why all of these: an engine is only valid for the shapes it was built for, on the GPU model and TensorRT
    version that built it, and for the weights, domain width, exporter and opset baked into it
    (``engine_cache_key``); anything else must rebuild rather than load a mismatched file.
    """
    if precision not in ENGINE_PRECISIONS:
        raise ValueError(f"precision must be one of {ENGINE_PRECISIONS}, got {precision!r}")
    key = engine_cache_key(config, precision, source, opset)
    device, trt_v = sanitize(device_name), sanitize(trt_version)
    name = f"cosmos3_step_{config.tag()}_{precision}_{device}_trt{trt_v}_{key}.engine"
    return Path(cache_dir) / name
