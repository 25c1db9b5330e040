"""The policy server's wire contract: gRPC service, protobuf messages, versions and the handshake check.

Why gRPC + protobuf (see docs/policy_server.md): the transport, framing, deadlines, status codes and
reconnection are an existing, widely deployed RPC framework's (what lerobot's async inference uses), not a
protocol of ours; what is ours is only the few messages below. The messages are built from this table at
import time (``descriptor_pb2``) instead of ``protoc``-generated code, because generated ``*_pb2.py`` files
pin the protobuf runtime to the generator's major version, and the planner side runs on whatever protobuf a
Python 3.10 / Humble machine has; a descriptor built at run time works on every protobuf >= 3.20.

Versioning: ``PROTOCOL_VERSION`` changes whenever a message or a field's meaning changes; fields are only ever
added (new numbers), never renumbered. At connect the client also compares the package version (major.minor)
and what the server serves (model id, action space, domain, raw width, chunk size): see
:func:`compatibility_problems`.

Pure: NumPy + protobuf + the package's core types; no gRPC here (the client and server modules add it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from cosmos_ros import __version__
from cosmos_ros.runtime.backend import ActionPrefix, PolicyRequest, RawPolicyOutput

PROTOCOL_VERSION = 1
PACKAGE_VERSION = __version__
SERVICE = "cosmos_ros.policy.v1.PolicyService"
INFO_METHOD = f"/{SERVICE}/GetInfo"
PLAN_METHOD = f"/{SERVICE}/Plan"
# gRPC's default 4 MiB message cap is below a 1080p frame plus decoded video; frames are checked against the
# planner's own max_image_pixels long before this.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

_T = descriptor_pb2.FieldDescriptorProto
_U32, _U64, _STR, _BYTES, _F64, _BOOL = (
    _T.TYPE_UINT32,
    _T.TYPE_UINT64,
    _T.TYPE_STRING,
    _T.TYPE_BYTES,
    _T.TYPE_DOUBLE,
    _T.TYPE_BOOL,
)
_REPEATED = "repeated"

# message -> [(field, number, type[, "repeated"])]. Append new fields with new numbers; never renumber.
MESSAGES: Mapping[str, list[tuple[Any, ...]]] = {
    "InfoRequest": [
        ("protocol_version", 1, _U32),
        ("package_version", 2, _STR),
        ("client_name", 3, _STR),
    ],
    "ServerInfo": [
        ("protocol_version", 1, _U32),
        ("package_version", 2, _STR),
        ("model_id", 3, _STR),
        ("backend", 4, _STR),
        ("device", 5, _STR),
        ("dtype", 6, _STR),
        ("action_space", 7, _STR),
        ("domain_name", 8, _STR),
        ("raw_width", 9, _U32),
        ("chunk_size", 10, _U32),
        ("instance_id", 11, _STR),  # new per server process: a restart is detected, the handshake redone
        ("shared_memory", 12, _BOOL),  # the server maps client frames from shared memory (same host only)
    ],
    "PlanRequest": [
        ("instance_id", 1, _STR),  # the server's instance the client verified; another one refuses
        ("height", 2, _U32),
        ("width", 3, _U32),
        ("image", 4, _BYTES),  # [H, W, 3] uint8 RGB, row-major; empty when shm_name is set
        ("shm_name", 5, _STR),  # shared-memory segment holding the frame at offset 0 (same host)
        ("prompt", 6, _STR),
        ("domain_name", 7, _STR),
        ("chunk_size", 8, _U32),
        ("resolution_tier", 9, _U32),
        ("view_point", 10, _STR),
        ("fps", 11, _F64),
        ("num_inference_steps", 12, _U32),
        ("guidance_scale", 13, _F64),
        ("seed", 14, _U64),
        ("decode_video", 15, _BOOL),
        ("has_prefix", 16, _BOOL),
        ("prefix_actions", 17, _BYTES),  # [chunk_size, W] float32
        ("prefix_width", 18, _U32),
        ("prefix_weights", 19, _BYTES),  # [chunk_size] float32
        ("prefix_frozen_steps", 20, _U32),
    ],
    "PlanReply": [
        ("rows", 1, _U32),
        ("cols", 2, _U32),
        ("actions", 3, _BYTES),  # [rows, cols] float32
        ("video_shape", 4, _U32, _REPEATED),  # [F, H, W, 3] or empty
        ("video", 5, _BYTES),  # uint8
        ("timing_names", 6, _STR, _REPEATED),
        ("timing_values", 7, _F64, _REPEATED),  # seconds, server side
        ("instance_id", 8, _STR),
    ],
}


def _build_messages() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="cosmos_ros/policy/v1/policy.proto", package="cosmos_ros.policy.v1", syntax="proto3"
    )
    for name, fields in MESSAGES.items():
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, *rest in fields:
            label = _T.LABEL_REPEATED if rest == [_REPEATED] else _T.LABEL_OPTIONAL
            msg.field.add(name=fname, number=number, type=ftype, label=label)
    pool = descriptor_pool.DescriptorPool()  # private pool: no clash with any other proto in the process
    pool.Add(fdp)
    out = {}
    for name in MESSAGES:
        desc = pool.FindMessageTypeByName(f"cosmos_ros.policy.v1.{name}")
        if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.21
            out[name] = message_factory.GetMessageClass(desc)
        else:  # pragma: no cover - protobuf 3.20
            out[name] = message_factory.MessageFactory(pool).GetPrototype(desc)
    return out


_MSG = _build_messages()
InfoRequest = _MSG["InfoRequest"]
ServerInfoMsg = _MSG["ServerInfo"]
PlanRequestMsg = _MSG["PlanRequest"]
PlanReplyMsg = _MSG["PlanReply"]


# ---- what a server serves and what a client expects --------------------------------------------------------
@dataclass(frozen=True)
class ServedModel:
    """What a server serves; sent in ``ServerInfo`` and checked by the client at connect.

    Attributes:
        model_id: Name of the model (the server's ``--model-id``, default the model directory's name).
        action_space: Action-space profile name the server was started for.
        domain_name: Cosmos 3 embodiment domain of that profile.
        raw_width: Width of the raw actions the server returns.
        chunk_size: Actions per plan the server serves.
    """

    model_id: str
    action_space: str
    domain_name: str
    raw_width: int
    chunk_size: int

    def __post_init__(self) -> None:
        for name in ("model_id", "action_space", "domain_name"):
            if not getattr(self, name):
                raise ValueError(f"{name} must be non-empty, got {getattr(self, name)!r}")
        if self.raw_width < 1:
            raise ValueError(f"raw_width must be >= 1, got {self.raw_width}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")


def model_id_from_path(path: str) -> str:
    """The model id a path names: its last component (``/srv/models/cosmos3-nano/`` -> ``cosmos3-nano``).

    Why the name and not the path: the planner and the server are often on different machines, where the same
    checkpoint lives under different directories.
    """
    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise ValueError(f"cannot take a model id from {path!r}")
    return name


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def compatibility_problems(info: Any, expected: ServedModel) -> list[str]:
    """Why a client expecting ``expected`` must not use the server that sent ``info`` (empty list: it may).

    Checked: protocol version (equal), package version (equal major.minor: patch releases keep the wire),
    model id, action space, domain, raw width, chunk size.
    """
    problems = []
    if info.protocol_version != PROTOCOL_VERSION:
        problems.append(f"protocol version {info.protocol_version} != ours {PROTOCOL_VERSION}")
    if _major_minor(info.package_version) != _major_minor(PACKAGE_VERSION):
        problems.append(
            f"package version {info.package_version or '(none)'} != ours {PACKAGE_VERSION} (major.minor)"
        )
    pairs = [
        ("model_id", info.model_id, expected.model_id),
        ("action_space", info.action_space, expected.action_space),
        ("domain_name", info.domain_name, expected.domain_name),
        ("raw_width", info.raw_width, expected.raw_width),
        ("chunk_size", info.chunk_size, expected.chunk_size),
    ]
    problems += [f"serves {name} {got!r}, expected {want!r}" for name, got, want in pairs if got != want]
    return problems


def describe_info(info: Any) -> str:
    """One line for logs."""
    return (
        f"model {info.model_id!r} ({info.backend}, {info.device}, {info.dtype}), action space "
        f"{info.action_space!r} ({info.domain_name}, width {info.raw_width}, chunk {info.chunk_size}), "
        f"protocol {info.protocol_version}, package {info.package_version}"
    )


# ---- PolicyRequest <-> PlanRequest -------------------------------------------------------------------------
def request_to_msg(request: PolicyRequest, instance_id: str, shm_name: str = "") -> Any:
    """The message of ``request``; the frame goes inline unless it is in shared memory ``shm_name``."""
    h, w = request.image.shape[:2]
    msg = PlanRequestMsg(
        instance_id=instance_id,
        height=h,
        width=w,
        shm_name=shm_name,
        prompt=request.prompt,
        domain_name=request.domain_name,
        chunk_size=request.chunk_size,
        resolution_tier=request.resolution_tier,
        view_point=request.view_point,
        fps=request.fps,
        num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale,
        seed=request.seed,
        decode_video=request.decode_video,
    )
    if not shm_name:
        msg.image = np.ascontiguousarray(request.image).tobytes()
    p = request.prefix
    if p is not None:
        msg.has_prefix = True
        msg.prefix_actions = np.ascontiguousarray(p.actions).tobytes()
        msg.prefix_width = p.actions.shape[1]
        msg.prefix_weights = np.ascontiguousarray(p.weights).tobytes()
        msg.prefix_frozen_steps = p.frozen_steps
    return msg


def msg_to_request(msg: Any, image: np.ndarray | None = None) -> PolicyRequest:
    """The ``PolicyRequest`` of a message; ``image`` is the frame when it came through shared memory.

    Raises:
        ValueError: Sizes that do not add up, or any field ``PolicyRequest`` refuses.
    """
    if image is None:
        expected = msg.height * msg.width * 3
        if len(msg.image) != expected:
            raise ValueError(
                f"image has {len(msg.image)} bytes, {msg.width}x{msg.height} RGB needs {expected}"
            )
        # Writable (a copy): backends hand the frame to torch.from_numpy, which must not get read-only memory.
        image = np.frombuffer(bytearray(msg.image), dtype=np.uint8).reshape(msg.height, msg.width, 3)
    prefix = None
    if msg.has_prefix:
        rows, width = msg.chunk_size, msg.prefix_width
        if width < 1 or len(msg.prefix_actions) != rows * width * 4 or len(msg.prefix_weights) != rows * 4:
            raise ValueError(f"prefix arrays do not match chunk_size {rows} and width {width}")
        prefix = ActionPrefix(
            actions=np.frombuffer(msg.prefix_actions, dtype=np.float32).reshape(rows, width).copy(),
            weights=np.frombuffer(msg.prefix_weights, dtype=np.float32).copy(),
            frozen_steps=msg.prefix_frozen_steps,
        )
    return PolicyRequest(
        image=image,
        prompt=msg.prompt,
        domain_name=msg.domain_name,
        chunk_size=msg.chunk_size,
        resolution_tier=msg.resolution_tier,
        view_point=msg.view_point,
        fps=msg.fps,
        num_inference_steps=msg.num_inference_steps,
        guidance_scale=msg.guidance_scale,
        seed=msg.seed,
        decode_video=msg.decode_video,
        prefix=prefix,
    )


def output_to_msg(out: RawPolicyOutput, instance_id: str) -> Any:
    actions = np.ascontiguousarray(out.actions, dtype=np.float32)
    if actions.ndim != 2:
        raise ValueError(f"backend returned actions of shape {actions.shape}, expected [T, W]")
    msg = PlanReplyMsg(
        rows=actions.shape[0],
        cols=actions.shape[1],
        actions=actions.tobytes(),
        timing_names=list(out.timings),
        timing_values=[float(v) for v in out.timings.values()],
        instance_id=instance_id,
    )
    if out.video is not None:
        video = np.ascontiguousarray(out.video, dtype=np.uint8)
        msg.video_shape.extend(video.shape)
        msg.video = video.tobytes()
    return msg


def msg_to_output(msg: Any) -> RawPolicyOutput:
    """The ``RawPolicyOutput`` of a reply (arrays are copies, writable). Raises ValueError on bad sizes."""
    if len(msg.actions) != msg.rows * msg.cols * 4:
        raise ValueError(f"reply has {len(msg.actions)} action bytes for [{msg.rows}, {msg.cols}] float32")
    actions = np.frombuffer(msg.actions, dtype=np.float32).reshape(msg.rows, msg.cols).copy()
    video = None
    if msg.video_shape:
        shape = tuple(msg.video_shape)
        if len(msg.video) != int(np.prod(shape)):
            raise ValueError(f"reply has {len(msg.video)} video bytes for shape {shape}")
        video = np.frombuffer(msg.video, dtype=np.uint8).reshape(shape).copy()
    if len(msg.timing_names) != len(msg.timing_values):
        raise ValueError("reply timing names and values differ in length")
    timings = {f"server_{k}": float(v) for k, v in zip(msg.timing_names, msg.timing_values, strict=True)}
    return RawPolicyOutput(actions=actions, video=video, timings=timings)
